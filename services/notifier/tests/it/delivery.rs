//! Never lost, never doubled: mail server outages, repeated events, a lost record, a refusal.
//! Each test runs an SMTP server of its own so it can stop it.

use crate::support::*;
use shared::Env;

#[tokio::test]
async fn an_email_waits_out_a_mail_server_outage_and_arrives_once_without_holding_up_other_envs() {
    let stores = stores().await;
    let (mailed, quiet) = (unique_env("notify"), unique_env("notify"));
    let mut sink = SmtpSink::start().await;
    // One notifier for both envs; only `mailed` has recipients.
    let mut vars = vars(&mailed, &sink.url());
    vars.set("ETL_ENVS", format!("{mailed},{quiet}"));
    let notifier = start(&vars);

    sink.stop().await;
    publish_loaded(&stores, &loaded(&mailed, "run_outage"), 1).await;
    publish_loaded(&stores, &loaded(&quiet, "run_quiet"), 1).await;

    // The quiet env's notification goes out while the mail server is still down: the first event
    // was tried (events are taken in order), put back for later, and did not block the second.
    let quiet_n = NotifyReader::open(&stores, &quiet).await.next().await;
    assert_eq!(quiet_n["run_id"], "run_quiet");
    assert_eq!(
        notify_count(&stores, &mailed).await,
        0,
        "nothing published before the email's fate is known"
    );
    assert!(mails(&sink.maildir, &mailed).is_empty());

    sink.resume().await;
    let n = NotifyReader::open(&stores, &mailed).await.next().await;
    assert_eq!(n["run_id"], "run_outage");
    assert_eq!(n["emailed"], true);
    // The notification follows the send, so the email is in the Maildir by now — exactly one.
    let mails = mails(&sink.maildir, &mailed);
    assert_eq!(mails.len(), 1, "{mails:#?}");
    assert!(
        mails[0]
            .subject
            .starts_with(&format!("[{mailed}] COVID-19 data updated"))
    );
    assert_eq!(notify_count(&stores, &mailed).await, 1);

    notifier.stop().await;
    let scope: shared::EnvScope = format!("{mailed},{quiet}").parse().unwrap();
    let etl = stores
        .js
        .get_stream(shared::nats::ETL_STREAM)
        .await
        .unwrap();
    let _ = etl.delete_consumer(&notifier::consumer_name(&scope)).await;
    clean_up(&mailed).await;
    clean_up(&quiet).await;
}

#[tokio::test]
async fn the_same_run_delivered_twice_is_emailed_and_published_once() {
    let stores = stores().await;
    let env = unique_env("notify");
    let sink = SmtpSink::start().await;
    let notifier = start(&vars(&env, &sink.url()));
    let event = loaded(&env, "run_twice");
    publish_loaded(&stores, &event, 1).await;
    publish_loaded(&stores, &event, 2).await;
    // A third event marks the end: once it is notified, both copies have been handled.
    publish_loaded(&stores, &loaded(&env, "run_marker"), 1).await;

    let mut notify = NotifyReader::open(&stores, &env).await;
    assert_eq!(notify.next().await["run_id"], "run_twice");
    assert_eq!(notify.next().await["run_id"], "run_marker");
    assert_eq!(notify_count(&stores, &env).await, 2);
    let mails = mails(&sink.maildir, &env);
    assert_eq!(mails.len(), 2, "one email per run: {mails:#?}");
    assert_ne!(mails[0].message_id, mails[1].message_id);
    wait_all_acknowledged(&stores, &env).await;

    notifier.stop().await;
    clean_up(&env).await;
}

/// The crash window: the mail server accepted the email but the notifier died before recording
/// it. Simulated by removing the record and delivering the event again to a restarted notifier.
#[tokio::test]
async fn a_run_whose_record_was_lost_is_emailed_once_more_never_less() {
    let stores = stores().await;
    let env = unique_env("notify");
    let sink = SmtpSink::start().await;
    let vars = vars(&env, &sink.url());
    let event = loaded(&env, "run_crash");
    let key = shared::store::notified_key(&env, "run_crash");

    let notifier = start(&vars);
    publish_loaded(&stores, &event, 1).await;
    let mut notify = NotifyReader::open(&stores, &env).await;
    assert_eq!(notify.next().await["run_id"], "run_crash");
    assert_eq!(mails(&sink.maildir, &env).len(), 1);
    assert!(
        stores.state.get(&key).await.unwrap().is_some(),
        "the send is recorded"
    );
    notifier.stop().await;

    // "Killed between the SMTP accept and the record": no record, and the event comes back.
    stores.state.purge(&key).await.unwrap();
    let notifier = start(&vars);
    publish_loaded(&stores, &event, 2).await;
    publish_loaded(&stores, &loaded(&env, "run_marker"), 1).await;
    assert_eq!(notify.next().await["run_id"], "run_marker");
    let after_crash = mails(&sink.maildir, &env);
    assert_eq!(
        after_crash
            .iter()
            .filter(|m| m.subject.contains("1 new day"))
            .count(),
        3,
        "run_crash twice, run_marker once"
    );
    let crash_copies: Vec<_> = after_crash
        .iter()
        .filter(|m| m.message_id.contains("run_crash"))
        .collect();
    assert_eq!(crash_copies.len(), 2, "exactly one duplicate");
    assert_eq!(
        crash_copies[0].message_id, crash_copies[1].message_id,
        "the duplicate is recognisable"
    );
    assert!(
        stores.state.get(&key).await.unwrap().is_some(),
        "recorded again"
    );

    // Recorded again: a further copy sends nothing.
    publish_loaded(&stores, &event, 3).await;
    publish_loaded(&stores, &loaded(&env, "run_marker2"), 1).await;
    assert_eq!(notify.next().await["run_id"], "run_marker2");
    assert_eq!(
        mails(&sink.maildir, &env)
            .iter()
            .filter(|m| m.message_id.contains("run_crash"))
            .count(),
        2
    );
    // The republished notification had the same message id: still one for the run.
    assert_eq!(notify_count(&stores, &env).await, 3);

    notifier.stop().await;
    clean_up(&env).await;
}

#[tokio::test]
async fn an_email_the_server_refuses_for_good_is_not_retried() {
    let stores = stores().await;
    let env = unique_env("notify");
    let sink = SmtpSink::start().await;
    // The sink answers 500 to every message once its Maildir cannot be written.
    std::fs::remove_dir_all(sink.maildir.join("tmp")).unwrap();
    let notifier = start(&vars(&env, &sink.url()));
    publish_failed(&stores, &failed(&env, "run_refused")).await;

    let n = NotifyReader::open(&stores, &env).await.next().await;
    assert_eq!(n["run_id"], "run_refused");
    assert_eq!(n["emailed"], false);
    let note = n["email_note"].as_str().unwrap();
    assert!(note.contains("refused") && note.contains("500"), "{note}");
    // Acknowledged, not put back for another attempt.
    wait_all_acknowledged(&stores, &env).await;

    notifier.stop().await;
    clean_up(&env).await;
}

#[tokio::test]
async fn a_bad_address_stops_the_notifier_at_start() {
    let env = Env::new("t_badaddr").unwrap();
    let mut vars = vars(&env, "smtp://127.0.0.1:1");
    vars.set(
        "EMAIL_TO_T_BADADDR",
        "ops@example.com, ops at example dot com",
    );
    let err = notifier::Config::from_vars(&vars).unwrap_err();
    assert_eq!(err.lines.len(), 1, "{err}");
    assert!(
        err.lines[0]
            .starts_with("EMAIL_TO_T_BADADDR: `ops at example dot com` is not an email address"),
        "{err}"
    );
}
