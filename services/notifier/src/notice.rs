//! One notice, the same steps whatever it is about (a run, a failure, a staleness alert):
//!
//! 1. read its record in the ledger ([`shared::store::notified_key`]); a finished notice stops;
//! 2. publish the notification on `notify.<env>` at once, its email `pending` (recipients are due
//!    one) or `skipped`, and record that it is published;
//! 3. send the email; while the mail server is down or deferring this step fails with
//!    [`NoticeError::MailUnavailable`] and the caller tries the notice again later, which finds
//!    step 2 done and resumes here. The answer (sent, or refused for good) is recorded at once;
//! 4. publish the email's fate as an [`EmailReport`] and record that it is reported.
//!
//! Each step is recorded before the next starts, so a notice taken up again (a redelivered
//! event, the next staleness check) does only what remains: machine subscribers never wait on the
//! mail server, and nothing is published or emailed twice. The one exception is a crash between
//! the server's acceptance and its record: the email is then sent a second time (same
//! `Message-ID`), never not at all.

use chrono::Utc;
use lettre::message::Mailbox;
use shared::Env;
use shared::events::{EmailFate, EmailReport, SCHEMA_VERSION};
use shared::ids::RunId;
use shared::message::Publish;
use shared::nats::{self, NatsError};
use shared::store::{self, StoreError};

use crate::compose::Composed;
use crate::ledger::{Ledger, Record};
use crate::mailer::{Mailer, SendError};

/// Whether a notice is emailed.
#[derive(Debug, Clone, Copy)]
pub enum Email<'a> {
    To(&'a [Mailbox]),
    /// None is due. The note says why when recipients are configured (a policy); with nobody to
    /// email there is nothing to explain.
    Skip(Option<&'a str>),
}

impl<'a> Email<'a> {
    /// An email to `to`, or none when the list is empty.
    pub fn to(to: &'a [Mailbox]) -> Self {
        if to.is_empty() {
            Self::Skip(None)
        } else {
            Self::To(to)
        }
    }
}

/// What people are told, and under which identity it is recorded and de-duplicated.
#[derive(Debug, Clone, Copy)]
pub struct Notice<'a> {
    pub env: &'a Env,
    /// The run, the failure ([`shared::events::Failed::id`]) or the alert
    /// ([`shared::events::StaleAlert::id`]).
    pub id: &'a RunId,
    pub composed: &'a Composed,
    pub email: Email<'a>,
}

/// Where a notice stands after [`Notices::deliver`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    /// The notification went out in this call (rather than an earlier one).
    pub published_now: bool,
    pub email: EmailFate,
}

#[derive(Debug, thiserror::Error)]
pub enum NoticeError {
    #[error("could not read or write the notice record {key}: {source}")]
    Record { key: String, source: StoreError },
    #[error("could not publish the {what} for {id} on notify.{env}: {source}")]
    Publish {
        what: &'static str,
        env: Env,
        id: RunId,
        source: NatsError,
    },
    #[error("the mail server ({server}) did not take the email about {id}: {reason}")]
    MailUnavailable {
        id: RunId,
        server: String,
        reason: String,
    },
}

/// The notice steps, with what they need.
pub struct Notices {
    js: async_nats::jetstream::Context,
    ledger: Ledger,
    mailer: Mailer,
}

impl Notices {
    pub fn new(js: async_nats::jetstream::Context, ledger: Ledger, mailer: Mailer) -> Self {
        Self { js, ledger, mailer }
    }

    /// Takes `notice` through whatever steps remain. `announce` builds the notification from the
    /// email's fate and note as they stand when it is published (`pending` or `skipped`).
    pub async fn deliver<A, F>(
        &self,
        notice: &Notice<'_>,
        announce: F,
    ) -> Result<Delivered, NoticeError>
    where
        A: Publish,
        F: FnOnce(EmailFate, Option<String>) -> A,
    {
        let key = store::notified_key(notice.env, notice.id);
        let found = self
            .ledger
            .get(&key)
            .await
            .map_err(|source| NoticeError::Record {
                key: key.clone(),
                source,
            })?;
        let mut record = match found {
            Some(record) if record.is_done() => {
                tracing::debug!(env = %notice.env, id = %notice.id, "notice done before, nothing to do");
                return Ok(Delivered {
                    published_now: false,
                    email: record.email,
                });
            }
            Some(record) => {
                tracing::info!(env = %notice.env, id = %notice.id, email = record.email.as_str(), published = record.published, "resuming a notice");
                record
            }
            None => plan(notice),
        };

        let published_now = !record.published;
        if published_now {
            let notification = announce(record.email, record.note.clone());
            self.publish("notification", notice, &notification).await?;
            tracing::info!(env = %notice.env, id = %notice.id, subject = %notice.composed.subject, email = record.email.as_str(), "notified");
            record.published = true;
            // A fate known already (skipped) is in the notification itself: no report follows.
            record.reported = record.email != EmailFate::Pending;
            self.save(&key, &record).await?;
        }

        if record.email == EmailFate::Pending {
            self.send(notice, &mut record).await?;
            // Recorded before anything else, so that a retry does not send it again.
            self.save(&key, &record).await?;
        }

        if !record.reported {
            self.publish("email report", notice, &report(notice, &record))
                .await?;
            record.reported = true;
            self.save(&key, &record).await?;
        }
        Ok(Delivered {
            published_now,
            email: record.email,
        })
    }

    /// Sends the email and writes its fate into `record`; `Err` while the server may yet take it.
    async fn send(&self, notice: &Notice<'_>, record: &mut Record) -> Result<(), NoticeError> {
        let (env, id) = (notice.env, notice.id);
        let to = match notice.email {
            Email::To(to) => to,
            // Recipients were removed while the email waited: nobody left to send it to.
            Email::Skip(note) => {
                tracing::info!(%env, %id, "recipients removed before the email could be sent");
                record.email = EmailFate::Skipped;
                record.note = note.map(str::to_owned);
                record.at = Utc::now();
                return Ok(());
            }
        };
        // Stable for the notice, so that the rare duplicate is recognisable as one.
        let message_id = format!("{id}.{env}");
        match self.mailer.send(to, notice.composed, &message_id).await {
            Ok(()) => {
                tracing::info!(%env, %id, recipients = to.len(), subject = %notice.composed.subject, "email sent");
                record.email = EmailFate::Sent;
                record.note = None;
            }
            Err(SendError::Refused(reason)) => {
                tracing::error!(%env, %id, server = self.mailer.server(), %reason, "the mail server refused the email for good");
                record.email = EmailFate::Refused;
                record.note = Some(format!("the mail server refused the email: {reason}"));
            }
            Err(SendError::Transient(reason)) => {
                tracing::warn!(%env, %id, server = self.mailer.server(), %reason, "mail server unavailable, the email waits");
                return Err(NoticeError::MailUnavailable {
                    id: id.clone(),
                    server: self.mailer.server().to_owned(),
                    reason,
                });
            }
        }
        record.recipients = to.len();
        record.at = Utc::now();
        Ok(())
    }

    async fn publish<A: Publish>(
        &self,
        what: &'static str,
        notice: &Notice<'_>,
        event: &A,
    ) -> Result<(), NoticeError> {
        nats::publish(&self.js, event)
            .await
            .map(drop)
            .map_err(|source| NoticeError::Publish {
                what,
                env: notice.env.clone(),
                id: notice.id.clone(),
                source,
            })
    }

    async fn save(&self, key: &str, record: &Record) -> Result<(), NoticeError> {
        self.ledger
            .put(key, record)
            .await
            .map_err(|source| NoticeError::Record {
                key: key.to_owned(),
                source,
            })
    }
}

/// A new notice's record: its email pending when one is due, else skipped.
fn plan(notice: &Notice<'_>) -> Record {
    let subject = &notice.composed.subject;
    match notice.email {
        Email::To(to) => Record::new(EmailFate::Pending, subject, to.len(), None),
        Email::Skip(note) => Record::new(EmailFate::Skipped, subject, 0, note.map(str::to_owned)),
    }
}

/// The email's fate as published once it is known.
fn report(notice: &Notice<'_>, record: &Record) -> EmailReport {
    EmailReport {
        schema_version: SCHEMA_VERSION,
        report: "email".to_owned(),
        env: notice.env.clone(),
        about: notice.id.clone(),
        email: record.email,
        subject: record.subject.clone(),
        recipients: record.recipients,
        email_note: record.note.clone(),
        at: record.at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn composed() -> Composed {
        Composed {
            subject: "[prod] COVID-19 data updated: 1 new day".to_owned(),
            text: "t".to_owned(),
            html: "h".to_owned(),
        }
    }

    #[test]
    fn a_notice_with_recipients_starts_with_its_email_pending() {
        let to: Vec<Mailbox> = vec!["ops@example.com".parse().unwrap()];
        let (env, id, composed) = (Env::prod(), RunId::new("run1").unwrap(), composed());
        let notice = Notice {
            env: &env,
            id: &id,
            composed: &composed,
            email: Email::to(&to),
        };
        let record = plan(&notice);
        assert_eq!(record.email, EmailFate::Pending);
        assert_eq!(record.recipients, 1);
        assert!(!record.published && !record.reported);
    }

    #[test]
    fn a_notice_for_nobody_is_skipped_without_a_note() {
        let (env, id, composed) = (Env::prod(), RunId::new("run1").unwrap(), composed());
        let notice = Notice {
            env: &env,
            id: &id,
            composed: &composed,
            email: Email::to(&[]),
        };
        let record = plan(&notice);
        assert_eq!((record.email, record.note), (EmailFate::Skipped, None));
    }

    #[test]
    fn the_report_carries_what_a_reader_of_runs_needs() {
        let (env, id, composed) = (Env::prod(), RunId::new("run1").unwrap(), composed());
        let notice = Notice {
            env: &env,
            id: &id,
            composed: &composed,
            email: Email::Skip(None),
        };
        let mut record = Record::new(EmailFate::Refused, &composed.subject, 2, None);
        record.note = Some("the mail server refused the email: 550 no".to_owned());
        let report = report(&notice, &record);
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["report"], "email");
        assert_eq!(json["about"], "run1");
        assert_eq!(json["email"], "refused");
        assert_eq!(json["recipients"], 2);
        assert_eq!(json["subject"], composed.subject);
        assert!(json["email_note"].as_str().unwrap().contains("550"));
        assert_eq!(report.msg_id(), "notify:prod:run1:email");
    }
}
