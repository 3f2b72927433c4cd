//! Staleness alerts: once per stale commit, by email and on `notify.<env>`.

use crate::support::*;
use chrono::{Duration, Utc};
use shared::Source;
use shared::events::{EmailFate, Extracted, StaleAlert, Trigger, TriggerKind};
use shared::nats::Stores;

/// Makes a commit of `age_days` ago the latest extracted payload of `source`.
async fn set_latest(stores: &Stores, env: &shared::Env, source: Source, sha: &str, age_days: i64) {
    let mut input = input(env, source.clone(), sha);
    input.upstream.commit_time = Utc::now() - Duration::days(age_days);
    let event = Extracted {
        schema_version: shared::events::SCHEMA_VERSION,
        env: env.clone(),
        dataset: shared::Dataset::US,
        source: source.clone(),
        dataset_sources: vec![],
        upstream: input.upstream,
        object: input.object,
        trigger: Trigger::new(TriggerKind::Commit),
        fetched_at: Utc::now(),
    };
    shared::store::kv_put(
        &stores.state,
        &shared::store::latest_key(env, &source),
        &event,
    )
    .await
    .unwrap();
}

/// Reads a run's notification and then its email's report.
async fn next_run_emailed(notify: &mut NotifyReader, run: &str) {
    assert_eq!(notify.next().await["run_id"], run);
    let report = notify.next().await;
    assert_eq!(
        (&report["about"], &report["email"]),
        (&run.into(), &"sent".into())
    );
}

#[tokio::test]
async fn a_stale_source_is_reported_once_per_stale_commit() {
    let stores = stores().await;
    let env = unique_env("notify");
    let sink = SmtpSink::start().await;
    set_latest(&stores, &env, Source::NYT, "aaaaaaa111", 30).await;
    set_latest(&stores, &env, Source::JHU, "bbbbbbb222", 1).await;
    let mut vars = vars(&env, &sink.url());
    vars.set("STALE_AFTER", "7d");
    let notifier = start(&vars);

    // Checked at start: nyt is 30 days old, jhu one day.
    let mut notify = NotifyReader::open(&stores, &env).await;
    let alert: StaleAlert = serde_json::from_value(notify.next().await).unwrap();
    assert_eq!(alert.alert, "stale");
    assert_eq!(alert.source, Source::NYT);
    assert_eq!(alert.upstream.commit_sha, "aaaaaaa111");
    assert_eq!(alert.email, EmailFate::Pending);
    // The alert's email goes through the same steps as a run's: its report follows.
    let report = notify.next().await;
    assert_eq!(report["about"], alert.id().as_str());
    assert_eq!(report["email"], "sent");
    let first = wait_for_mails(&sink.maildir, &env, 1).await;
    assert_eq!(
        first[0].subject,
        format!("[{env}] COVID-19 source nyt is stale: no new commit for 30 days")
    );
    assert!(first[0].text.contains(
        "latest commit: aaaaaaa (https://github.com/nytimes/covid-19-data/commit/aaaaaaa111)"
    ));
    assert!(first[0].html.contains("alert threshold: 7 days"));

    // Runs check again, but the episode was reported: two runs, two run emails, no new alert.
    publish_loaded(&stores, &loaded(&env, "run_a"), 1).await;
    publish_loaded(&stores, &loaded(&env, "run_b"), 1).await;
    next_run_emailed(&mut notify, "run_a").await;
    next_run_emailed(&mut notify, "run_b").await;
    // A run is acknowledged after its staleness check: once both are, both checks are done.
    wait_all_acknowledged(&stores, &env).await;
    let stale_mails = |env: &shared::Env| {
        mails(&sink.maildir, env)
            .into_iter()
            .filter(|m| m.subject.contains("is stale"))
            .count()
    };
    assert_eq!(stale_mails(&env), 1);

    // A newer commit that is stale too is a new episode, reported on the next run.
    set_latest(&stores, &env, Source::NYT, "ccccccc333", 10).await;
    publish_loaded(&stores, &loaded(&env, "run_c"), 1).await;
    next_run_emailed(&mut notify, "run_c").await;
    let second: StaleAlert = serde_json::from_value(notify.next().await).unwrap();
    assert_eq!(second.upstream.commit_sha, "ccccccc333");
    assert_eq!(second.source, Source::NYT);
    assert_eq!(notify.next().await["about"], second.id().as_str());
    publish_loaded(&stores, &loaded(&env, "run_d"), 1).await;
    next_run_emailed(&mut notify, "run_d").await;
    wait_all_acknowledged(&stores, &env).await;
    assert_eq!(stale_mails(&env), 2);
    assert_eq!(
        notify_count(&stores, &env).await,
        12,
        "2 alerts + 4 runs, each with its email's report"
    );

    notifier.stop().await;
    clean_up(&env).await;
}

#[tokio::test]
async fn a_stale_source_of_an_env_without_recipients_is_still_published() {
    let stores = stores().await;
    let env = unique_env("notify");
    set_latest(&stores, &env, Source::JHU, "ddddddd444", 9).await;
    let mut vars = vars(&env, "smtp://127.0.0.1:1");
    vars.set(format!("EMAIL_TO_{}", env.as_str().to_uppercase()), "");
    vars.set("STALE_AFTER", "8d");
    let notifier = start(&vars);

    let alert: StaleAlert =
        serde_json::from_value(NotifyReader::open(&stores, &env).await.next().await).unwrap();
    assert_eq!(alert.source, Source::JHU);
    assert_eq!((alert.email, alert.email_note), (EmailFate::Skipped, None));
    assert_eq!(alert.stale_after_secs, 8 * 86_400);

    notifier.stop().await;
    clean_up(&env).await;
}

#[tokio::test]
async fn of_two_notifiers_one_checks_staleness_and_the_other_takes_over_when_it_stops() {
    let stores = stores().await;
    let env = unique_env("notify");
    let sink = SmtpSink::start().await;
    set_latest(&stores, &env, Source::NYT, "eeeeeee555", 30).await;
    let mut vars = vars(&env, &sink.url());
    vars.set("STALE_AFTER", "7d")
        .set("STALE_CHECK_INTERVAL", "100ms")
        .set("LEASE_PERIOD", "1s");
    // The first notifier takes the lease and alerts; then a second one starts.
    let first = start(&vars);
    let mut notify = NotifyReader::open(&stores, &env).await;
    let alert: StaleAlert = serde_json::from_value(notify.next().await).unwrap();
    assert_eq!(alert.upstream.commit_sha, "eeeeeee555");
    assert_eq!(notify.next().await["about"], alert.id().as_str());
    let second = start(&vars);

    // Both check ten times a second; only the holder does, so nothing is alerted twice.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(
        notify_count(&stores, &env).await,
        2,
        "one alert, one report"
    );

    // The holder stops (and gives the lease up): the other alerts about the next episode.
    let key = notifier::stale::lease_key(&shared::EnvScope::Only(vec![env.clone()]));
    let holder = stores
        .state
        .get(&key)
        .await
        .unwrap()
        .expect("a lease holder");
    first.stop().await;
    set_latest(&stores, &env, Source::NYT, "fffffff666", 20).await;
    let next: StaleAlert = serde_json::from_value(notify.next().await).unwrap();
    assert_eq!(next.upstream.commit_sha, "fffffff666");
    assert_eq!(notify.next().await["about"], next.id().as_str());
    let now_held = stores
        .state
        .get(&key)
        .await
        .unwrap()
        .expect("a lease holder");
    assert_ne!(holder, now_held, "the other notifier holds the lease");
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert_eq!(
        notify_count(&stores, &env).await,
        4,
        "two alerts, two reports"
    );
    assert_eq!(
        wait_for_mails(&sink.maildir, &env, 2).await.len(),
        2,
        "one email per episode"
    );

    second.stop().await;
    clean_up(&env).await;
}
