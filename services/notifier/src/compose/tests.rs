use chrono::{NaiveDate, TimeZone, Utc};
use shared::Source;
use shared::events::{
    Correction, Dropped, FailureKind, Field, ObjectRef, Trigger, TriggerKind, UpstreamRef,
};

use super::*;

const DASHBOARD: &str = "http://127.0.0.1:8080";

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2023, 3, d).unwrap()
}

fn input(source: Source, repo: &str, sha: &str) -> InputRef {
    InputRef {
        object: ObjectRef {
            bucket: "etl-raw".into(),
            name: format!("prod/{source}/{}", "0".repeat(64)),
            sha256: "0".repeat(64).parse().unwrap(),
            bytes: 10,
        },
        source,
        upstream: UpstreamRef {
            repo: repo.to_owned(),
            path: "us.csv".to_owned(),
            commit_sha: sha.parse().unwrap(),
            commit_time: Utc.with_ymd_and_hms(2023, 3, 23, 14, 5, 0).unwrap(),
            covered_commits: vec![],
        },
    }
}

fn loaded(counts: Counts, corrections: Vec<Correction>) -> Loaded {
    Loaded {
        schema_version: SCHEMA_VERSION,
        env: Env::prod(),
        dataset: Dataset::US,
        run_id: "run1".parse().unwrap(),
        trigger: Trigger::new(TriggerKind::Commit),
        inputs: vec![
            input(Source::NYT, "nytimes/covid-19-data", "1a2b3c4d5e6f7a8b9c0d"),
            input(Source::JHU, "datasets/covid-19", "ffeeddccbbaa99887766"),
        ],
        counts,
        corrections_total: corrections.len() as u64,
        corrections,
        rows: 4,
        first_date: day(20),
        last_date: day(23),
        dropped: Dropped {
            only_nyt: 1,
            only_jhu: 0,
            only_nyt_dates: vec![day(19)],
            only_jhu_dates: vec![],
        },
        warnings: vec![],
        duration_ms: 2_400,
        timings: vec![],
    }
}

fn revisions(n: usize) -> Vec<Correction> {
    (0..n)
        .map(|i| Correction {
            key: None,
            date: day(1 + (i % 28) as u32),
            field: Field::Cases,
            old: Some(1000 + i as i64),
            new: Some(2000 + i as i64),
        })
        .collect()
}

#[test]
fn a_run_with_changes_says_what_changed_in_the_subject() {
    let counts = Counts {
        inserted: 1,
        updated: 4,
        unchanged: 0,
        removed: 0,
        revised: 3,
    };
    let composed = RunEvent::Loaded(Box::new(loaded(counts, revisions(3)))).compose(DASHBOARD);
    assert_eq!(
        composed.subject,
        "[prod] COVID-19 data updated: 1 new day, 3 revised"
    );
    for line in [
        "  new days: 1\n",
        "  revised: 3\n",
        "  updated: 4\n",
        "  removed: 0\n",
        "  - 2023-03-01 cases: 1,000 → 2,000\n",
    ] {
        assert!(
            composed.text.contains(line),
            "missing {line:?} in\n{}",
            composed.text
        );
    }
    assert!(composed.text.contains("nyt: nytimes/covid-19-data us.csv at 1a2b3c4 (https://github.com/nytimes/covid-19-data/commit/1a2b3c4d5e6f7a8b9c0d), committed 2023-03-23 14:05 UTC"));
    assert!(composed.text.contains("  only in NYT: 1 (2023-03-19)\n"));
    assert!(composed.text.contains("took 2.4 s"));
    assert!(composed.text.contains("Dashboard: http://127.0.0.1:8080"));
    assert!(composed.html.contains(
        "<a href=\"https://github.com/datasets/covid-19/commit/ffeeddccbbaa99887766\">ffeeddc</a>"
    ));
}

#[test]
fn a_run_that_changed_nothing_says_unchanged() {
    let counts = Counts {
        unchanged: 4,
        ..Counts::default()
    };
    let event = RunEvent::Loaded(Box::new(loaded(counts, vec![])));
    assert!(event.is_unchanged());
    let composed = event.compose(DASHBOARD);
    assert_eq!(composed.subject, "[prod] COVID-19 data unchanged");
    assert!(composed.text.contains("is unchanged"));
}

#[test]
fn only_updated_deltas_still_count_as_a_change() {
    let counts = Counts {
        updated: 2,
        unchanged: 2,
        ..Counts::default()
    };
    let event = RunEvent::Loaded(Box::new(loaded(counts, vec![])));
    assert!(!event.is_unchanged());
    assert_eq!(
        event.compose(DASHBOARD).subject,
        "[prod] COVID-19 data updated: 2 days updated"
    );
}

#[test]
fn revised_values_are_capped_with_a_count_of_the_rest() {
    let mut event = loaded(
        Counts {
            revised: 1500,
            updated: 1500,
            ..Counts::default()
        },
        revisions(1000),
    );
    event.corrections_total = 1500;
    let composed = RunEvent::Loaded(Box::new(event)).compose(DASHBOARD);
    let listed = composed
        .text
        .lines()
        .filter(|l| l.starts_with("  - 2023-") && l.contains(" → "))
        .count();
    assert_eq!(listed, MAX_CORRECTIONS_IN_EMAIL);
    assert!(composed.text.contains("  - and 1,480 more\n"));
    assert!(composed.html.contains("<li>and 1,480 more</li>"));
}

#[test]
fn anything_from_upstream_is_escaped_in_html() {
    let mut event = loaded(
        Counts {
            inserted: 1,
            ..Counts::default()
        },
        vec![],
    );
    event.inputs[0].upstream.repo = "evil/<script>alert(1)</script>".into();
    event.warnings = vec!["negative new_cases on 2023-03-21 <b>".into()];
    let composed = RunEvent::Loaded(Box::new(event)).compose(DASHBOARD);
    assert!(!composed.html.contains("<script>"));
    assert!(!composed.html.contains("<b>"));
    assert!(
        composed
            .html
            .contains("evil/&lt;script&gt;alert(1)&lt;/script&gt;")
    );
    assert!(
        composed
            .text
            .contains("  - negative new_cases on 2023-03-21 <b>\n")
    );
}

fn failed(reason: &str) -> Failed {
    Failed {
        schema_version: SCHEMA_VERSION,
        env: Env::prod(),
        dataset: Dataset::US,
        run_id: Some("run9".parse().unwrap()),
        stage: Stage::Transform,
        kind: FailureKind::InvalidData,
        reason: reason.into(),
        inputs: vec![input(
            Source::NYT,
            "nytimes/covid-19-data",
            "1a2b3c4d5e6f7a8b9c0d",
        )],
        trigger: None,
        source: None,
        cause: None,
        failed_at: Utc.with_ymd_and_hms(2026, 11, 25, 6, 0, 0).unwrap(),
    }
}

#[test]
fn a_failure_names_stage_and_reason_and_says_nothing_changed() {
    let event = RunEvent::Failed(Box::new(failed("nyt line 57: deaths is not a number.")));
    let composed = event.compose(DASHBOARD);
    assert_eq!(
        composed.subject,
        "[prod] COVID-19 ETL failed at transform: nyt line 57: deaths is not a number"
    );
    assert!(composed.text.contains("  stage: transform\n"));
    assert!(
        composed
            .text
            .contains("  reason: nyt line 57: deaths is not a number.\n")
    );
    assert!(composed.text.contains("The stored data was left unchanged"));
    assert!(
        composed
            .text
            .contains("nyt: nytimes/covid-19-data us.csv at 1a2b3c4")
    );
    let n = event.notification(&composed, EmailFate::Pending, None);
    assert_eq!(n.status, RunStatus::Failed);
    assert_eq!(n.stage, Some(Stage::Transform));
    assert_eq!(n.kind, Some(FailureKind::InvalidData));
    assert_eq!(n.email, EmailFate::Pending);
    assert_eq!(n.run_id, "run9");
    assert_eq!(n.text, composed.text);
}

#[test]
fn a_multi_line_reason_cannot_break_the_subject() {
    let composed =
        RunEvent::Failed(Box::new(failed("bad\r\nBcc: victim@example.com"))).compose(DASHBOARD);
    assert!(!composed.subject.contains('\n') && !composed.subject.contains('\r'));
}

#[test]
fn a_success_notification_carries_the_counts_and_capped_corrections() {
    let counts = Counts {
        inserted: 4,
        revised: 150,
        ..Counts::default()
    };
    let event = RunEvent::Loaded(Box::new(loaded(counts, revisions(150))));
    let composed = event.compose(DASHBOARD);
    let n = event.notification(&composed, EmailFate::Pending, None);
    assert_eq!(n.status, RunStatus::Succeeded);
    assert_eq!(n.counts.inserted, 4);
    assert_eq!(n.corrections.len(), MAX_CORRECTIONS_IN_NOTIFICATION);
    assert_eq!(n.dropped.only_nyt, 1);
    assert_eq!(n.duration_ms, 2_400);
    assert_eq!(n.email, EmailFate::Pending);
    assert_eq!(n.subject, composed.subject);
}

/// The settle step's report of an email the notifier gave up on.
fn gave_up() -> Failed {
    let mut event = failed(
        "gave up after 21 deliveries: the mail server (smtp://mail:25) did not take the email about run1: connection refused",
    );
    event.run_id = None;
    event.stage = Stage::Notify;
    event.kind = FailureKind::Unavailable;
    event.cause = Some("message:42".to_owned());
    event
}

#[test]
fn the_notifiers_own_failure_says_the_run_is_not_affected() {
    let event = RunEvent::Failed(Box::new(gave_up()));
    assert!(event.is_notify_failure());
    let composed = event.compose(DASHBOARD);
    assert!(
        composed
            .subject
            .starts_with("[prod] COVID-19 ETL notification failed: gave up after 21 deliveries"),
        "{}",
        composed.subject
    );
    assert!(composed.text.contains("The run itself is not affected"));
    assert!(composed.text.contains("etl.prod.dead.notify"));
    assert!(!composed.text.contains("The stored data was left unchanged"));
}

#[test]
fn a_failure_report_of_the_notifier_never_takes_the_runs_identity() {
    let run = RunEvent::Loaded(Box::new(loaded(Counts::default(), vec![])));
    let context = run.failure_context();
    assert_eq!(context.run_id, None, "it would replace the run's notice");
    assert_eq!(context.inputs.len(), 2);
    // The report that comes back is a notice of its own, told apart by the message it was about.
    let report = RunEvent::Failed(Box::new(gave_up()));
    assert_ne!(report.id(), run.id());
    assert_eq!(report.failure_context().run_id, None);
}

/// A `counties` run: its inputs are NYT's county files, its corrections carry their key and come
/// largest first, as the loader sends them.
fn counties_loaded(counts: Counts, corrections: Vec<Correction>) -> Loaded {
    let mut event = loaded(counts, corrections);
    event.dataset = Dataset::COUNTIES;
    let mut input = input(
        Source::new("us-counties-2020").unwrap(),
        "nytimes/covid-19-data",
        "1a2b3c4d5e6f7a8b9c0d",
    );
    input.upstream.path = "us-counties-2020.csv".to_owned();
    event.inputs = vec![input];
    event.dropped = Dropped::default();
    event.rows = 2_280_000;
    event
}

/// `n` revised county values, the largest first.
fn county_revisions(n: usize) -> Vec<Correction> {
    (0..n)
        .map(|i| Correction {
            key: Some(format!("County {i}, Texas")),
            date: NaiveDate::from_ymd_opt(2020, 4, 28).unwrap(),
            field: Field::Deaths,
            old: Some(10),
            new: Some(10 + (n - i) as i64),
        })
        .collect()
}

#[test]
fn a_keyed_run_names_its_dataset_and_lists_the_largest_revisions_with_their_key() {
    let counts = Counts {
        inserted: 3_250,
        updated: 3_300,
        unchanged: 2_276_700,
        removed: 2,
        revised: 50,
    };
    let mut corrections = vec![Correction {
        key: Some("Harris, Texas".to_owned()),
        date: NaiveDate::from_ymd_opt(2020, 4, 28).unwrap(),
        field: Field::Cases,
        old: Some(10),
        new: Some(12),
    }];
    corrections.extend(county_revisions(29));
    let mut event = counties_loaded(counts, corrections);
    event.corrections_total = 57;
    let event = RunEvent::Loaded(Box::new(event));
    assert!(!event.is_unchanged());
    let composed = event.compose(DASHBOARD);
    assert_eq!(
        composed.subject,
        "[prod] COVID-19 counties data updated: 3,250 new rows, 50 revised, 2 rows removed"
    );
    for line in [
        "The COVID-19 counties data for prod was updated from upstream.\n",
        "  new rows: 3,250\n",
        "  revised values: 57 (in 50 rows)\n",
        "  removed rows: 2\n",
        "  rows stored: 2,280,000 (2023-03-20 to 2023-03-23)\n",
        "  - Harris, Texas  2020-04-28  cases 10 → 12\n",
        "  - County 0, Texas  2020-04-28  deaths 10 → 39\n",
        "  - and 37 more\n",
        "us-counties-2020: nytimes/covid-19-data us-counties-2020.csv at 1a2b3c4",
    ] {
        assert!(
            composed.text.contains(line),
            "missing {line:?} in\n{}",
            composed.text
        );
    }
    let listed = composed
        .text
        .lines()
        .filter(|l| l.starts_with("  - ") && l.contains(" → "))
        .count();
    assert_eq!(listed, MAX_CORRECTIONS_IN_EMAIL);
    assert!(
        !composed.text.contains("dropped by the join"),
        "a keyed dataset has one source, nothing to join"
    );
    assert!(
        composed
            .html
            .contains("<li>Harris, Texas  2020-04-28  cases 10 → 12</li>")
    );

    let n = event.notification(&composed, EmailFate::Pending, None);
    assert_eq!(n.dataset, Dataset::COUNTIES);
    assert_eq!(n.subject, composed.subject);
    assert_eq!(n.corrections[0].key.as_deref(), Some("Harris, Texas"));
    assert_eq!(n.counts.inserted, 3_250);
}

#[test]
fn a_keyed_run_follows_the_us_rules_for_nothing_changed_and_only_updated() {
    let unchanged = RunEvent::Loaded(Box::new(counties_loaded(
        Counts {
            unchanged: 9,
            ..Counts::default()
        },
        vec![],
    )));
    assert!(unchanged.is_unchanged());
    let composed = unchanged.compose(DASHBOARD);
    assert_eq!(composed.subject, "[prod] COVID-19 counties data unchanged");
    assert!(
        composed
            .text
            .contains("is unchanged: this run found nothing new upstream")
    );

    let mut states = counties_loaded(
        Counts {
            updated: 1,
            unchanged: 8,
            ..Counts::default()
        },
        vec![],
    );
    states.dataset = Dataset::STATES;
    assert_eq!(
        RunEvent::Loaded(Box::new(states))
            .compose(DASHBOARD)
            .subject,
        "[prod] COVID-19 states data updated: 1 row updated"
    );
}

#[test]
fn a_us_notification_says_us() {
    let event = RunEvent::Loaded(Box::new(loaded(Counts::default(), vec![])));
    let composed = event.compose(DASHBOARD);
    let n = event.notification(&composed, EmailFate::Pending, None);
    assert_eq!(n.dataset, Dataset::US);
}

#[test]
fn a_keyed_failure_names_the_dataset() {
    let mut event = failed("us-counties-2021.csv line 12: cases is not a number.");
    event.dataset = Dataset::COUNTIES;
    let event = RunEvent::Failed(Box::new(event));
    let composed = event.compose(DASHBOARD);
    assert_eq!(
        composed.subject,
        "[prod] COVID-19 counties ETL failed at transform: us-counties-2021.csv line 12: cases is not a number"
    );
    for line in [
        "The COVID-19 counties run for prod failed at the transform stage.\n",
        "  dataset: counties\n",
        "  stage: transform\n",
        "The stored data was left unchanged",
    ] {
        assert!(
            composed.text.contains(line),
            "missing {line:?} in\n{}",
            composed.text
        );
    }
    let n = event.notification(&composed, EmailFate::Pending, None);
    assert_eq!(n.dataset, Dataset::COUNTIES);
    assert_eq!(n.status, RunStatus::Failed);
    assert_eq!(event.failure_context().dataset, Dataset::COUNTIES);
}

#[test]
fn the_notifiers_own_failure_about_a_keyed_run_names_the_dataset() {
    let mut event = gave_up();
    event.dataset = Dataset::STATES;
    let composed = RunEvent::Failed(Box::new(event)).compose(DASHBOARD);
    assert!(
        composed
            .subject
            .starts_with("[prod] COVID-19 states ETL notification failed: gave up"),
        "{}",
        composed.subject
    );
    assert!(
        composed
            .text
            .contains("The notifier gave up on a notice about the states data of prod.")
    );
}
