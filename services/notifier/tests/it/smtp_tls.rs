//! SMTP credentials only ever cross an encrypted connection to a verified server: a run is
//! emailed through a real TLS server that requires authentication (implicit TLS and STARTTLS),
//! a wrong password or an untrusted certificate stops the email with a reason that says so, and
//! credentials over plain `smtp://` stop the notifier at start.

use crate::support::*;
use lettre::message::Mailbox;
use notifier::compose::Composed;
use notifier::mailer::{Mailer, SendError};
use test_support::eventually;
use test_support::smtp::{Mode, TlsSink};
use tokio::process::Command;

const PASSWORD: &str = "correct horse battery staple";

/// Notifier settings for `env` that reach `sink` with `password` and trust its CA.
fn sink_vars(sink: &TlsSink, env: &shared::Env, password: &str) -> shared::config::Vars {
    let mut vars = vars(env, &sink.url());
    for (name, value) in sink.smtp_vars(password) {
        vars.set(name, value);
    }
    vars
}

/// A run is notified, and its email arrives through the authenticated TLS session.
async fn a_run_is_emailed_through(mode: Mode) {
    let stores = stores().await;
    let env = unique_env("tls");
    let sink = TlsSink::start(mode, PASSWORD).await;
    let notifier = start(&sink_vars(&sink, &env, PASSWORD));
    let mut notify = NotifyReader::open(&stores, &env).await;

    publish_loaded(&stores, &loaded(&env, "run_tls"), 1).await;
    assert_eq!(notify.next().await["run_id"], "run_tls");
    let report = notify.next().await;
    assert_eq!(
        (report["about"].as_str(), report["email"].as_str()),
        (Some("run_tls"), Some("sent")),
        "{report}"
    );
    let mails = wait_for_mails(&sink.maildir, &env, 1).await;
    assert_eq!(mails.len(), 1, "{mails:#?}");
    assert!(
        mails[0]
            .subject
            .starts_with(&format!("[{env}] COVID-19 data updated")),
        "{:?}",
        mails[0].subject
    );

    notifier.stop().await;
    clean_up(&env).await;
}

#[tokio::test]
async fn a_run_is_emailed_over_implicit_tls_with_authentication() {
    a_run_is_emailed_through(Mode::Implicit).await;
}

#[tokio::test]
async fn a_run_is_emailed_over_required_starttls_with_authentication() {
    a_run_is_emailed_through(Mode::StartTls).await;
}

fn composed() -> Composed {
    Composed {
        subject: "TLS check".into(),
        text: "text".into(),
        html: "<p>html</p>".into(),
    }
}

fn recipients() -> Vec<Mailbox> {
    vec!["ops@example.com".parse().unwrap()]
}

/// What sending one email with `vars` answers.
async fn send_with(vars: &shared::config::Vars) -> Result<(), SendError> {
    shared::install_crypto_provider();
    let config = config(vars);
    let mailer = Mailer::new(&config.smtp, config.from).unwrap();
    mailer.send(&recipients(), &composed(), "tls-check").await
}

async fn a_wrong_password_is_refused_over(mode: Mode) {
    let stores = stores().await;
    let env = unique_env("tls");
    let sink = TlsSink::start(mode, PASSWORD).await;
    let vars = sink_vars(&sink, &env, "wrong password");

    let reason = match send_with(&vars).await {
        Err(SendError::Transient(reason)) => reason,
        other => panic!("a wrong password is a failure to wait out, got {other:?}"),
    };
    assert!(
        reason.starts_with("the mail server refused the SMTP credentials")
            && reason.contains("(535): 5.7.8 Authentication credentials invalid"),
        "the reason names the refused authentication: {reason}"
    );
    assert!(!reason.contains("wrong password"), "{reason}");

    // The notifier publishes the run at once; the email waits, tried again, never sent.
    let notifier = start(&vars);
    let mut notify = NotifyReader::open(&stores, &env).await;
    publish_loaded(&stores, &loaded(&env, "run_bad_password"), 1).await;
    let notification = notify.next().await;
    assert_eq!(notification["run_id"], "run_bad_password");
    assert_eq!(notification["email"], "pending");
    let scope: shared::EnvScope = env.as_str().parse().unwrap();
    let durable = notifier::consumer_name(&scope);
    let etl = stores
        .js
        .get_stream(shared::nats::ETL_STREAM)
        .await
        .unwrap();
    let (stream, name) = (&etl, durable.as_str());
    eventually(
        "the refused email to be tried again",
        WAIT,
        move || async move {
            let info = stream.consumer_info(name).await.ok()?;
            (info.num_redelivered > 0).then_some(())
        },
    )
    .await;
    notifier.stop().await;
    assert!(mails(&sink.maildir, &env).is_empty());
    assert_eq!(
        notify_count(&stores, &env).await,
        1,
        "no email report while the password is wrong"
    );
    clean_up(&env).await;
}

#[tokio::test]
async fn a_wrong_password_over_implicit_tls_keeps_the_email_waiting_with_the_servers_refusal() {
    a_wrong_password_is_refused_over(Mode::Implicit).await;
}

#[tokio::test]
async fn a_wrong_password_over_starttls_keeps_the_email_waiting_with_the_servers_refusal() {
    a_wrong_password_is_refused_over(Mode::StartTls).await;
}

#[tokio::test]
async fn a_server_whose_certificate_no_trusted_authority_signed_is_refused() {
    let env = unique_env("tls");
    for mode in [Mode::Implicit, Mode::StartTls] {
        let sink = TlsSink::start(mode, PASSWORD).await;
        let mut vars = sink_vars(&sink, &env, PASSWORD);
        // Without SMTP_CA_FILE only the system's roots are trusted, and they did not sign it.
        vars.set("SMTP_CA_FILE", "");
        match send_with(&vars).await {
            Err(SendError::Transient(reason)) => assert!(
                reason.to_lowercase().contains("certificate"),
                "the reason names the certificate: {reason}"
            ),
            other => panic!("an unverified server must not get the email, got {other:?}"),
        }
        assert!(mails(&sink.maildir, &env).is_empty());
    }
}

/// Runs the notifier binary's `--check-config` with `vars`: (success, stderr).
async fn check_config(vars: &[(&str, &str)]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_notifier"))
        .arg("--check-config")
        .env_clear()
        .envs(vars.iter().copied())
        .output()
        .await
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn credentials_over_plain_smtp_stop_the_notifier_at_start() {
    for vars in [
        vec![("SMTP_URL", "smtp://mailer:hunter2@127.0.0.1:1025")],
        vec![
            ("SMTP_URL", "smtp://127.0.0.1:1025"),
            ("SMTP_USERNAME", "mailer"),
            ("SMTP_PASSWORD", "hunter2"),
        ],
        vec![
            ("SMTP_URL", "smtp://127.0.0.1:1025?tls=opportunistic"),
            ("SMTP_USERNAME", "mailer"),
            ("SMTP_PASSWORD", "hunter2"),
        ],
    ] {
        let (ok, stderr) = check_config(&vars).await;
        assert!(!ok, "{vars:?} was accepted");
        assert!(
            stderr.contains(
                "invalid configuration: SMTP_URL: SMTP credentials are set but would cross"
            ),
            "{stderr}"
        );
        assert!(!stderr.contains("hunter2"), "{stderr}");
    }
    // The same settings over TLS are fine.
    let (ok, stderr) = check_config(&[
        ("SMTP_URL", "smtp://127.0.0.1:1025?tls=required"),
        ("SMTP_USERNAME", "mailer"),
        ("SMTP_PASSWORD", "hunter2"),
    ])
    .await;
    assert!(ok, "{stderr}");
}
