//! End to end: upstream commits on a fake GitHub travel through the real extractor, transformer,
//! loader and notifier, against real NATS, PostgreSQL and SMTP, to rows, a notification and an
//! email.

use std::time::Duration;

use crate::support::{changes_of_run, emails_for, pipeline_vars, stored_values, upstream_commits};
use etl_tests::fake_github::{FakeGithub, NewCommit};
use shared::Source;
use shared::events::{Field, RunStatus};
use test_support::{Pipeline, Stages, TestEnv};

const NYT_V1: &str = "date,cases,deaths\n\
2020-03-01,100,2\n2020-03-02,150,3\n2020-03-03,210,5\n2020-03-04,300,8\n2020-03-05,420,12\n";

/// JHU's older layout (with Lat/Long); other countries, a US province row, and one US day
/// (2020-02-29) NYT does not have, which the join drops.
const JHU_V1: &str = "Date,Country/Region,Province/State,Lat,Long,Confirmed,Recovered,Deaths\n\
2020-02-29,US,,37.0902,-95.7129,70,3,1\n\
2020-03-01,Canada,Ontario,51.2538,-85.3232,3,0,0\n\
2020-03-01,US,,37.0902,-95.7129,100,5,2\n\
2020-03-02,US,,37.0902,-95.7129,150,7,3\n\
2020-03-02,US,Diamond Princess,35.4437,139.638,40,0,0\n\
2020-03-03,US,,37.0902,-95.7129,210,8,5\n\
2020-03-04,US,,37.0902,-95.7129,300,12,8\n\
2020-03-05,US,,37.0902,-95.7129,420,15,12\n";

/// Version 2: NYT revises 2020-03-03 (cases 210 → 215) and both add 2020-03-06.
const NYT_V2: &str = "date,cases,deaths\n\
2020-03-01,100,2\n2020-03-02,150,3\n2020-03-03,215,5\n2020-03-04,300,8\n2020-03-05,420,12\n2020-03-06,550,15\n";

fn jhu_v2() -> String {
    format!("{JHU_V1}2020-03-06,US,,37.0902,-95.7129,550,20,15\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_upstream_change_travels_from_github_to_rows_notification_and_email() {
    let test = TestEnv::new("e2e").await;
    let env = &test.env;
    let github = FakeGithub::start().await.expect("fake GitHub starts");
    github.add_many(upstream_commits(NYT_V1, JHU_V1));

    let vars = pipeline_vars(env, &github);
    let mut notifications = test.notifications().await;
    let pipeline = Pipeline::start(&vars, Stages::All).expect("the services start");

    // Version 1: the initial load.
    let first = notifications.next("the initial load").await;
    assert_eq!(first.status, RunStatus::Succeeded, "{}", first.text);
    assert_eq!(
        (
            first.counts.inserted,
            first.counts.updated,
            first.counts.unchanged,
            first.counts.removed,
            first.counts.revised
        ),
        (5, 0, 0, 0, 0)
    );
    assert_eq!((first.dropped.only_nyt, first.dropped.only_jhu), (0, 1));
    assert_eq!(
        stored_values(env).await,
        vec![
            ("2020-03-01".to_owned(), 100, 2, Some(5)),
            ("2020-03-02".to_owned(), 150, 3, Some(7)),
            ("2020-03-03".to_owned(), 210, 5, Some(8)),
            ("2020-03-04".to_owned(), 300, 8, Some(12)),
            ("2020-03-05".to_owned(), 420, 12, Some(15)),
        ]
    );
    let mails = emails_for(env, 1, Duration::from_secs(10)).await;
    assert_eq!(mails.len(), 1, "one email for the initial load");
    assert!(
        mails[0].subject.contains("5 new days"),
        "subject: {}",
        mails[0].subject
    );

    // `etl diff` previews version 2 exactly as the run below will count it, and writes nothing.
    let connections = etl_cli::Connections::from_vars(&vars).unwrap();
    let preview = etl_cli::diff::preview(&connections, NYT_V2.as_bytes(), jhu_v2().as_bytes(), env)
        .await
        .unwrap();
    let etl_cli::diff::Preview::Applies {
        diff,
        refused: None,
        ..
    } = preview
    else {
        panic!("the preview refused version 2: {preview:?}");
    };
    let c = diff.counts();
    assert_eq!(
        (c.inserted, c.updated, c.unchanged, c.removed, c.revised),
        (1, 2, 3, 0, 1)
    );
    assert_eq!(
        stored_values(env).await.len(),
        5,
        "the preview wrote nothing"
    );

    // Version 2: one old day revised, one day added, both sources in one commit each.
    github.add_many(upstream_commits(NYT_V2, &jhu_v2()));
    let second = notifications.next("the revision").await;
    assert_eq!(second.status, RunStatus::Succeeded, "{}", second.text);
    // 2020-03-03 is revised; its delta and the next day's delta change, so two rows are updated.
    assert_eq!(
        (
            second.counts.inserted,
            second.counts.updated,
            second.counts.unchanged,
            second.counts.removed,
            second.counts.revised
        ),
        (1, 2, 3, 0, 1)
    );
    assert_eq!(second.corrections.len(), 1);
    let correction = &second.corrections[0];
    assert_eq!(
        (
            correction.date.to_string(),
            correction.field,
            correction.old,
            correction.new
        ),
        ("2020-03-03".to_owned(), Field::Cases, Some(210), Some(215))
    );
    assert_eq!(
        changes_of_run(env, &second.run_id).await,
        vec![(
            "2020-03-03".to_owned(),
            "cases".to_owned(),
            Some(210),
            Some(215)
        )]
    );
    let stored = stored_values(env).await;
    assert_eq!(stored.len(), 6);
    assert_eq!(stored[2], ("2020-03-03".to_owned(), 215, 5, Some(8)));
    assert_eq!(stored[5], ("2020-03-06".to_owned(), 550, 15, Some(20)));

    let mails = emails_for(env, 2, Duration::from_secs(10)).await;
    assert_eq!(mails.len(), 2, "one email per run");

    // Both sources' events lead to the same run: it is notified once.
    notifications.assert_quiet(Duration::from_secs(2)).await;
    pipeline.stop().await;
    test.clean_up().await;
}

/// The NYT file with these `(date, cases, deaths)` rows, and `eol` as line ending.
fn nyt(rows: &[(&str, i64, i64)], eol: &str) -> String {
    let mut csv = format!("date,cases,deaths{eol}");
    for (date, cases, deaths) in rows {
        csv.push_str(&format!("{date},{cases},{deaths}{eol}"));
    }
    csv
}

fn nyt_commit(content: String) -> NewCommit {
    let at = Source::NYT.default_location().unwrap();
    NewCommit::new(&at.repo, &at.path, content)
}

type Counts = (u64, u64, u64, u64, u64);

fn counts(n: &shared::events::Notification) -> Counts {
    let c = &n.counts;
    (c.inserted, c.updated, c.unchanged, c.removed, c.revised)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sequence_of_versions_is_counted_and_recorded_exactly_and_a_bad_one_changes_nothing() {
    let test = TestEnv::new("seq").await;
    let env = &test.env;
    let github = FakeGithub::start().await.expect("fake GitHub starts");
    let mut vars = pipeline_vars(env, &github);
    // One removed day of six is more than the default 5 % guard allows.
    vars.set("MAX_REMOVED_SHARE", "0.2");
    let mut notifications = test.notifications().await;
    let pipeline = Pipeline::start(&vars, Stages::All).expect("the services start");

    // 1. Initial load: five days.
    github.add_many(upstream_commits(NYT_V1, JHU_V1));
    let run = notifications.next("the initial load").await;
    assert_eq!(counts(&run), (5, 0, 0, 0, 0), "{}", run.text);

    // 2. A new day and two revised old days (2020-03-02 deaths, 2020-03-04 cases).
    let v2 = [
        ("2020-03-01", 100, 2),
        ("2020-03-02", 150, 4),
        ("2020-03-03", 210, 5),
        ("2020-03-04", 305, 8),
        ("2020-03-05", 420, 12),
        ("2020-03-06", 550, 15),
    ];
    github.add_many([
        nyt_commit(nyt(&v2, "\n")),
        upstream_commits(NYT_V1, &jhu_v2()).remove(1),
    ]);
    let run = notifications.next("the revision").await;
    // Updated: 03-02 (deaths), 03-03 (its new_deaths), 03-04 (cases), 03-05 (its new_cases).
    assert_eq!(counts(&run), (1, 4, 1, 0, 2), "{}", run.text);
    assert_eq!(
        changes_of_run(env, &run.run_id).await,
        vec![
            (
                "2020-03-02".to_owned(),
                "deaths".to_owned(),
                Some(3),
                Some(4)
            ),
            (
                "2020-03-04".to_owned(),
                "cases".to_owned(),
                Some(300),
                Some(305)
            ),
        ]
    );

    // 3. NYT drops its first day: removed, and the new first day's deltas change.
    let v3 = &v2[1..];
    github.add(nyt_commit(nyt(v3, "\n")));
    let run = notifications.next("the removal").await;
    assert_eq!(counts(&run), (0, 1, 4, 1, 0), "{}", run.text);
    assert!(changes_of_run(env, &run.run_id).await.is_empty());

    // 4. The same data republished with CRLF line endings: a run that changes nothing.
    github.add(nyt_commit(nyt(v3, "\r\n")));
    let run = notifications.next("the unchanged re-publish").await;
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(counts(&run), (0, 0, 5, 0, 0), "{}", run.text);
    let before_bad = stored_values(env).await;

    // 5. A broken version: the run fails with a reason naming source, line and field, and the
    //    table is left exactly as it was.
    let broken = nyt(v3, "\n").replace("2020-03-04,305,8", "2020-03-04,305,eight");
    github.add(nyt_commit(broken));
    let run = notifications.next("the failed run").await;
    assert_eq!(run.status, RunStatus::Failed, "{}", run.text);
    let reason = run.reason.clone().unwrap_or_default();
    assert!(
        reason.contains("nyt") && reason.contains("line 4") && reason.contains("deaths"),
        "reason: {reason}"
    );
    assert_eq!(stored_values(env).await, before_bad);

    // 6. A good version after the bad one: applied as usual.
    let mut v6 = v3.to_vec();
    v6[3] = ("2020-03-05", 425, 12);
    github.add(nyt_commit(nyt(&v6, "\n")));
    let run = notifications.next("the recovery").await;
    assert_eq!(run.status, RunStatus::Succeeded, "{}", run.text);
    // 03-05 revised; its and 03-06's new_cases change.
    assert_eq!(counts(&run), (0, 2, 3, 0, 1), "{}", run.text);
    assert_eq!(
        changes_of_run(env, &run.run_id).await,
        vec![(
            "2020-03-05".to_owned(),
            "cases".to_owned(),
            Some(420),
            Some(425)
        )]
    );
    assert_eq!(
        stored_values(env).await[3],
        ("2020-03-05".to_owned(), 425, 12, Some(15))
    );

    // 7. Upstream reverts to version 3's file byte for byte: a new commit, so a new run that
    //    applies it (not mistaken for the earlier run of the same content).
    github.add(nyt_commit(nyt(v3, "\n")));
    let run = notifications.next("the revert").await;
    assert_eq!(run.status, RunStatus::Succeeded, "{}", run.text);
    assert_eq!(counts(&run), (0, 2, 3, 0, 1), "{}", run.text);
    assert_eq!(
        stored_values(env).await[3],
        ("2020-03-05".to_owned(), 420, 12, Some(15))
    );

    notifications.assert_quiet(Duration::from_secs(1)).await;
    pipeline.stop().await;
    test.clean_up().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn services_started_before_any_upstream_commit_pick_up_the_first_one() {
    let test = TestEnv::new("empty").await;
    let env = &test.env;
    let github = FakeGithub::start().await.expect("fake GitHub starts");
    let vars = pipeline_vars(env, &github);
    let mut notifications = test.notifications().await;
    let pipeline = Pipeline::start(&vars, Stages::All).expect("the services start");

    // Both files have no history yet: the extractor asks, twice for each, and finds nothing.
    github
        .wait_for_requests(4, Duration::from_secs(30), |r| {
            r.endpoint == etl_tests::fake_github::Endpoint::Commits && r.status == 200
        })
        .await
        .expect("the extractor polls an upstream without commits");
    github.add_many(upstream_commits(NYT_V1, JHU_V1));
    let run = notifications.next("the first upstream commit").await;
    assert_eq!(run.status, RunStatus::Succeeded, "{}", run.text);
    assert_eq!(run.counts.inserted, 5);

    pipeline.stop().await;
    test.clean_up().await;
}
