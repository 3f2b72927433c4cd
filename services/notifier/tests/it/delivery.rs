//! Never lost, never doubled, never waiting on the mail server: outages, repeated events, a lost
//! record, a refusal, an email given up on. Each test runs an SMTP server of its own so it can
//! stop it.

use std::time::Duration;

use crate::support::*;
use shared::Env;
use shared::events::{DeadLetter, Failed, FailureKind, Stage};
use shared::nats::{DEAD_STREAM, ETL_STREAM};
use test_support::{EventLog, eventually, wait_consumed};

/// How soon a notification follows its event when nothing but the mail server is slow.
const PROMPTLY: Duration = Duration::from_secs(5);

#[tokio::test]
async fn while_the_mail_server_is_down_the_notification_goes_out_at_once_and_the_email_once_it_is_back()
 {
    let stores = stores().await;
    let (mailed, quiet) = (unique_env("notify"), unique_env("notify"));
    let mut sink = SmtpSink::start().await;
    // One notifier for both envs; only `mailed` has recipients.
    let mut vars = vars(&mailed, &sink.url());
    vars.set("ETL_ENVS", format!("{mailed},{quiet}"));
    let scope: shared::EnvScope = format!("{mailed},{quiet}").parse().unwrap();
    let notifier = start(&vars);
    let mut notify = NotifyReader::open(&stores, &mailed).await;

    sink.stop().await;
    publish_loaded(&stores, &loaded(&mailed, "run_outage"), 1).await;
    publish_loaded(&stores, &loaded(&quiet, "run_quiet"), 1).await;

    // Machine subscribers do not wait on the mail server.
    let n = notify.next_within(PROMPTLY).await;
    assert_eq!(n["run_id"], "run_outage");
    assert_eq!(n["email"], "pending");
    // Nor do other envs: the event waiting on the mail server is put back, not held.
    let quiet_n = NotifyReader::open(&stores, &quiet)
        .await
        .next_within(PROMPTLY)
        .await;
    assert_eq!(quiet_n["run_id"], "run_quiet");

    // The email is retried as its own step: the event comes back, finds the notification
    // published, and only the email remains.
    let etl = stores.js.get_stream(ETL_STREAM).await.unwrap();
    let durable = notifier::consumer_name(&scope);
    let (stream, name) = (&etl, durable.as_str());
    eventually(
        "the waiting event to be delivered again",
        WAIT,
        move || async move {
            let info = stream.consumer_info(name).await.ok()?;
            (info.num_redelivered > 0).then_some(())
        },
    )
    .await;
    let key = shared::store::notified_key(&mailed, &run_id("run_outage"));
    let record: serde_json::Value = shared::store::kv_get(&stores.state, &key)
        .await
        .unwrap()
        .expect("the notice is recorded");
    assert_eq!(
        (&record["published"], &record["email"]),
        (&true.into(), &"pending".into())
    );
    assert!(mails(&sink.maildir, &mailed).is_empty());
    assert_eq!(notify_count(&stores, &mailed).await, 1, "no report yet");

    sink.resume().await;
    let report = notify.next().await;
    assert_eq!(report["report"], "email");
    assert_eq!(report["about"], "run_outage");
    assert_eq!(report["email"], "sent");
    assert_eq!(report["recipients"], 2);
    // The report follows the send, so the email is in the Maildir by now — exactly one.
    let sent = mails(&sink.maildir, &mailed);
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert!(
        sent[0]
            .subject
            .starts_with(&format!("[{mailed}] COVID-19 data updated"))
    );
    wait_consumed(&stores.js, ETL_STREAM, &durable, WAIT).await;
    assert_eq!(mails(&sink.maildir, &mailed).len(), 1);
    assert_eq!(
        notify_count(&stores, &mailed).await,
        2,
        "one notification, one report"
    );

    notifier.stop().await;
    // The consumer serves both envs, so neither env's clean-up removes it.
    let _ = etl.delete_consumer(&durable).await;
    clean_up(&mailed).await;
    clean_up(&quiet).await;
}

#[tokio::test]
async fn the_same_run_delivered_twice_is_published_and_emailed_once() {
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
    assert_eq!(notify.next().await["about"], "run_twice");
    assert_eq!(notify.next().await["run_id"], "run_marker");
    assert_eq!(notify.next().await["about"], "run_marker");
    wait_all_acknowledged(&stores, &env).await;
    assert_eq!(notify_count(&stores, &env).await, 4);
    let mails = mails(&sink.maildir, &env);
    assert_eq!(mails.len(), 2, "one email per run: {mails:#?}");
    assert_ne!(mails[0].message_id, mails[1].message_id);

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
    let key = shared::store::notified_key(&env, &run_id("run_crash"));

    let notifier = start(&vars);
    publish_loaded(&stores, &event, 1).await;
    let mut notify = NotifyReader::open(&stores, &env).await;
    assert_eq!(notify.next().await["run_id"], "run_crash");
    assert_eq!(notify.next().await["email"], "sent");
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
    // The run's notification and report went out again under the same message ids, which the
    // stream dropped: the marker's come next, its report once its email is sent.
    assert_eq!(notify.next().await["run_id"], "run_marker");
    assert_eq!(notify.next().await["about"], "run_marker");
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
    wait_all_acknowledged(&stores, &env).await;
    assert_eq!(
        mails(&sink.maildir, &env)
            .iter()
            .filter(|m| m.message_id.contains("run_crash"))
            .count(),
        2
    );
    assert_eq!(
        notify_count(&stores, &env).await,
        6,
        "a notification and a report for each of the three runs"
    );

    notifier.stop().await;
    clean_up(&env).await;
}

#[tokio::test]
async fn an_email_the_server_refuses_for_good_is_reported_and_not_retried() {
    let stores = stores().await;
    let env = unique_env("notify");
    let sink = SmtpSink::start().await;
    // The sink answers 500 to every message once its Maildir cannot be written.
    std::fs::remove_dir_all(sink.maildir.join("tmp")).unwrap();
    let notifier = start(&vars(&env, &sink.url()));
    publish_failed(&stores, &failed(&env, "run_refused")).await;

    let mut notify = NotifyReader::open(&stores, &env).await;
    let n = notify.next().await;
    assert_eq!(
        (&n["run_id"], &n["email"]),
        (&"run_refused".into(), &"pending".into())
    );
    let report = notify.next().await;
    assert_eq!(report["about"], "run_refused");
    assert_eq!(report["email"], "refused");
    let note = report["email_note"].as_str().unwrap();
    assert!(note.contains("refused") && note.contains("500"), "{note}");
    // Acknowledged, not put back for another attempt.
    wait_all_acknowledged(&stores, &env).await;

    notifier.stop().await;
    clean_up(&env).await;
}

/// Past the outage allowance the settle step gives the email up. Its report is a notice of its
/// own, published but never emailed (which would wait on the same mail server), and the run's
/// email is still owed should the event be published again.
#[tokio::test]
async fn an_email_given_up_after_an_outage_is_reported_once_and_not_emailed_about() {
    let stores = stores().await;
    let env = unique_env("notify");
    let mut sink = SmtpSink::start().await;
    let mut config = config(&vars(&env, &sink.url()));
    // With retries a second apart: three deliveries.
    config.smtp.give_up_after = Duration::from_secs(2);
    let mut notify = NotifyReader::open(&stores, &env).await;
    let failed_subject = shared::subjects::failed(&env, Stage::Notify);
    let dead_subject = shared::subjects::dead(Some(&env), Stage::Notify);
    let mut failures = EventLog::open(&stores.js, ETL_STREAM, failed_subject.clone()).await;
    let mut dead = EventLog::open(&stores.js, DEAD_STREAM, dead_subject.clone()).await;

    sink.stop().await;
    let notifier = start_with(config);
    publish_loaded(&stores, &loaded(&env, "run_lost"), 1).await;
    assert_eq!(notify.next_within(PROMPTLY).await["email"], "pending");

    let failure: Failed = failures.next_event(&failed_subject, WAIT).await;
    assert_eq!(
        (failure.stage, failure.kind),
        (Stage::Notify, FailureKind::Unavailable)
    );
    assert_eq!(failure.run_id, None, "not the run's failure");
    assert!(
        failure.reason.starts_with("gave up after 3 deliveries")
            && failure.reason.contains("run_lost"),
        "{}",
        failure.reason
    );
    let letter: DeadLetter = dead.next_event(&dead_subject, WAIT).await;
    assert_eq!(letter.subject, shared::subjects::loaded(&env));
    assert_eq!(letter.delivered, 3);

    let n = notify.next().await;
    assert_eq!(n["status"], "failed");
    assert_eq!(n["stage"], "notify");
    assert_eq!(n["run_id"], failure.id().as_str());
    assert_eq!(n["email"], "skipped");
    assert!(
        n["email_note"].as_str().unwrap().contains("not emailed"),
        "{n}"
    );
    // Both events are finished: nothing is being retried, no email is owed for the report.
    wait_all_acknowledged(&stores, &env).await;
    assert_eq!(notify_count(&stores, &env).await, 2, "no email reports");

    // Published again once the server is back (as `etl dead retry` would), the run's notice
    // resumes at its email.
    sink.resume().await;
    publish_loaded(&stores, &loaded(&env, "run_lost"), 2).await;
    let report = notify.next().await;
    assert_eq!(
        (&report["about"], &report["email"]),
        (&"run_lost".into(), &"sent".into())
    );
    wait_all_acknowledged(&stores, &env).await;
    let sent = mails(&sink.maildir, &env);
    assert_eq!(sent.len(), 1, "the run's email alone: {sent:#?}");
    assert_eq!(notify_count(&stores, &env).await, 3);

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
