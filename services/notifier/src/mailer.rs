//! Sending one email over SMTP, and sorting failures into "try again later" and "refused for
//! good" — the one distinction the handler acts on.

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::response::{Category, Code, Severity};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::compose::Composed;
use crate::config::{SmtpConfig, SmtpTls};

#[derive(Debug, thiserror::Error)]
pub enum MailerError {
    #[error("SMTP_URL {url} cannot be used: {source}")]
    Transport {
        url: String,
        source: lettre::transport::smtp::Error,
    },
    #[error("SMTP_CA_FILE {path} cannot be used: {source}")]
    Ca {
        path: String,
        source: lettre::transport::smtp::Error,
    },
}

/// Why an email did not go out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The server is down, unreachable, answered 4xx, or refused the session (authentication,
    /// TLS): the same email may go through later.
    #[error("mail server unavailable or deferring: {0}")]
    Transient(String),
    /// The server answered 5xx to a recipient or the message, or the message could not be
    /// built: sending it again would fail again.
    #[error("refused for good: {0}")]
    Refused(String),
}

#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    server: String,
    /// Where sends and failures are counted, when the notifier runs with metrics.
    metrics: Option<shared::metrics::Metrics>,
}

impl Mailer {
    /// Builds the transport (a connection pool; nothing connects until the first send). Must run
    /// inside the tokio runtime, with the rustls crypto provider installed when TLS is used.
    pub fn new(config: &SmtpConfig, from: Mailbox) -> Result<Self, MailerError> {
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(config.url.expose())
            .map_err(|source| MailerError::Transport {
                url: config.redacted_url.clone(),
                source,
            })?
            .timeout(Some(config.timeout));
        if let Some(tls) = tls(config)? {
            builder = builder.tls(tls);
        }
        if let Some((user, password)) = &config.credentials {
            builder =
                builder.credentials(Credentials::new(user.clone(), password.expose().to_owned()));
        }
        Ok(Self {
            transport: builder.build(),
            from,
            server: config.redacted_url.clone(),
            metrics: None,
        })
    }

    /// Counts every send in `metrics` (`covid_etl_emails_sent_total`, `..._failed_total`).
    pub fn with_metrics(mut self, metrics: shared::metrics::Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    pub fn server(&self) -> &str {
        &self.server
    }

    /// Sends `composed` as a multipart text + HTML email to `to`. `message_id` (the part before
    /// `@`) is stable for one notification, so a rare duplicate can be recognised by mail clients.
    pub async fn send(
        &self,
        to: &[Mailbox],
        composed: &Composed,
        message_id: &str,
    ) -> Result<(), SendError> {
        let message = self.message(to, composed, message_id)?;
        let result = match self.transport.send(message).await {
            Ok(_) => Ok(()),
            Err(err) => Err(classify(&err)),
        };
        if let Some(metrics) = &self.metrics {
            match &result {
                Ok(()) => metrics.record().email_sent(),
                Err(err) => metrics
                    .record()
                    .email_failed(matches!(err, SendError::Transient(_))),
            }
        }
        result
    }

    fn message(
        &self,
        to: &[Mailbox],
        composed: &Composed,
        message_id: &str,
    ) -> Result<Message, SendError> {
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(composed.subject.clone())
            .message_id(Some(format!("<{message_id}@covid-etl.notifier>")));
        for mailbox in to {
            builder = builder.to(mailbox.clone());
        }
        builder
            .multipart(MultiPart::alternative_plain_html(
                composed.text.clone(),
                composed.html.clone(),
            ))
            .map_err(|err| SendError::Refused(format!("the email could not be built: {err}")))
    }
}

/// The TLS settings when `SMTP_CA_FILE` adds a root to the system's; `None` keeps what lettre
/// made of the URL (the system's roots only, or no TLS). The server's name is checked either way.
fn tls(config: &SmtpConfig) -> Result<Option<Tls>, MailerError> {
    let Some(ca) = &config.ca else {
        return Ok(None);
    };
    let ca_error = |source| MailerError::Ca {
        path: ca.path.clone(),
        source,
    };
    let url_error = |source| MailerError::Transport {
        url: config.redacted_url.clone(),
        source,
    };
    let parameters = TlsParameters::builder(config.host.clone())
        .add_root_certificate(Certificate::from_pem(&ca.pem).map_err(ca_error)?)
        .build()
        .map_err(url_error)?;
    Ok(match config.tls {
        SmtpTls::None => None,
        SmtpTls::Opportunistic => Some(Tls::Opportunistic(parameters)),
        SmtpTls::StartTls => Some(Tls::Required(parameters)),
        SmtpTls::Implicit => Some(Tls::Wrapper(parameters)),
    })
}

/// Only a 5xx reply about the message or a recipient is final. Everything else — connection,
/// TLS, timeouts, 4xx, and the server or settings refusing the session (authentication, STARTTLS
/// missing) — may be fixed by the server coming back or an operator, so the email waits.
fn classify(err: &lettre::transport::smtp::Error) -> SendError {
    let described = describe(err);
    if err.is_permanent() && err.status().is_some_and(refuses_the_message) {
        SendError::Refused(described)
    } else if err.is_permanent() && err.status().is_some_and(refuses_the_credentials) {
        SendError::Transient(format!(
            "the mail server refused the SMTP credentials (SMTP_USERNAME / SMTP_PASSWORD or SMTP_URL): {described}"
        ))
    } else {
        SendError::Transient(described)
    }
}

/// `535` and the other `53z` replies: the session was refused over authentication.
fn refuses_the_credentials(code: Code) -> bool {
    code.severity == Severity::PermanentNegativeCompletion
        && code.category == Category::Unspecified3
}

/// 5xx replies other than authentication's `53z` (RFC 4954: a wrong password must not drop
/// every email).
fn refuses_the_message(code: Code) -> bool {
    code.severity == Severity::PermanentNegativeCompletion
        && code.category != Category::Unspecified3
}

/// The error and its causes on one line (lettre's `Display` leaves out the io cause).
fn describe(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use lettre::transport::smtp::response::Detail;

    use super::*;
    use crate::Config;

    fn code(severity: Severity, category: Category) -> Code {
        Code {
            severity,
            category,
            detail: Detail::Zero,
        }
    }

    #[test]
    fn only_a_refused_message_or_recipient_is_final() {
        assert!(refuses_the_message(code(
            Severity::PermanentNegativeCompletion,
            Category::MailSystem
        ))); // 550
        assert!(refuses_the_message(code(
            Severity::PermanentNegativeCompletion,
            Category::Syntax
        ))); // 501
        assert!(!refuses_the_message(code(
            Severity::PermanentNegativeCompletion,
            Category::Unspecified3
        ))); // 535
        assert!(!refuses_the_message(code(
            Severity::TransientNegativeCompletion,
            Category::MailSystem
        ))); // 450
    }

    #[tokio::test]
    async fn every_supported_url_form_builds_a_transport() {
        shared::install_crypto_provider();
        for url in [
            "smtp://127.0.0.1:1025",
            "smtp://mail.example.com:587?tls=required",
            "smtps://user:pass@mail.example.com",
        ] {
            let vars = shared::config::Vars::from_pairs([("SMTP_URL", url)]);
            let config = Config::from_vars(&vars).unwrap();
            let mailer = Mailer::new(&config.smtp, config.from).unwrap();
            assert!(!mailer.server().contains("pass"));
        }
    }
}
