//! Operability, with each service as its own process: one upstream change is one trace across
//! all four services (checked with a real OTLP receiver), and SIGTERM during a run loses nothing.

use std::collections::BTreeSet;

use crate::support::otlp::{OtlpReceiver, SpanRecord};
use crate::support::processes::{Process, next_notification};
use crate::support::{pipeline_vars, stored_values};
use etl_tests::fake_github::{FakeGithub, NewCommit};
use shared::Source;
use shared::config::Vars;
use shared::events::RunStatus;
use shared::nats::ETL_STREAM;
use test_support::{EventLog, TestEnv};

const NYT: &str = "date,cases,deaths\n2020-03-01,100,2\n2020-03-02,150,3\n2020-03-03,210,5\n";
const JHU: &str = "Date,Country/Region,Province/State,Confirmed,Recovered,Deaths\n\
2020-03-01,US,,100,5,2\n2020-03-02,US,,150,7,3\n2020-03-03,US,,210,8,5\n";
const PIPELINE: [&str; 4] = ["extractor", "transformer", "loader", "notifier"];

fn upstream(github: &FakeGithub) {
    let nyt = Source::NYT.default_location().unwrap();
    let jhu = Source::JHU.default_location().unwrap();
    github.add_many([
        NewCommit::new(&nyt.repo, &nyt.path, NYT),
        NewCommit::new(&jhu.repo, &jhu.path, JHU),
    ]);
}

fn spawn_pipeline(vars: &Vars, logs: &std::path::Path) -> Vec<Process> {
    PIPELINE
        .iter()
        .map(|name| Process::spawn(name, vars, logs))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_upstream_change_is_one_trace_across_all_four_services() {
    let test = TestEnv::new("trace").await;
    let env = &test.env;
    let github = FakeGithub::start().await.unwrap();
    let otlp = OtlpReceiver::start().await;
    let mut vars = pipeline_vars(env, &github);
    vars.set("OTEL_EXPORTER_OTLP_ENDPOINT", &otlp.url);
    let logs = tempfile::tempdir().unwrap();

    let mut notifications = test.notifications().await;
    let processes = spawn_pipeline(&vars, logs.path());
    upstream(&github);
    let notification = next_notification(&mut notifications, &processes, "the traced run").await;
    assert_eq!(notification.status, RunStatus::Succeeded);
    // Exiting flushes each process's last batch of spans.
    for process in processes {
        process.terminate().await;
    }

    let spans = otlp.spans();
    let loaded = format!("process {}", shared::subjects::loaded(env));
    let notifier_span = spans
        .iter()
        .find(|s| s.service == "notifier" && s.name == loaded)
        .unwrap_or_else(|| panic!("no notifier span `{loaded}` among {spans:#?}"));
    let trace: Vec<&SpanRecord> = spans
        .iter()
        .filter(|s| s.trace_id == notifier_span.trace_id)
        .collect();
    let services: BTreeSet<&str> = trace.iter().map(|s| s.service.as_str()).collect();
    assert_eq!(
        services,
        PIPELINE.into_iter().collect(),
        "services in the run's trace: {trace:#?}"
    );

    // Each stage's processing span is the child of the previous stage's publish span.
    let hops = [
        ("extractor", "transformer", "extracted"),
        ("transformer", "loader", "transformed"),
        ("loader", "notifier", "loaded"),
    ];
    for (producer, consumer, event) in hops {
        let child = trace
            .iter()
            .find(|s| {
                s.service == consumer && s.name.starts_with("process ") && s.name.contains(event)
            })
            .unwrap_or_else(|| panic!("no {consumer} span processing {event} in {trace:#?}"));
        let parent = trace
            .iter()
            .find(|s| s.span_id == child.parent_span_id)
            .unwrap_or_else(|| {
                panic!(
                    "the parent of {consumer}'s `{}` is not in the trace",
                    child.name
                )
            });
        assert_eq!(
            parent.service, producer,
            "parent of {consumer}'s `{}`",
            child.name
        );
        assert!(
            parent.name.starts_with("publish ") && parent.name.contains(event),
            "parent span: {}",
            parent.name
        );
    }
    test.clean_up().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_during_a_run_loses_nothing_and_the_run_completes_after_restart() {
    let test = TestEnv::new("sigterm").await;
    let env = &test.env;
    let github = FakeGithub::start().await.unwrap();
    let vars = pipeline_vars(env, &github);
    let logs = tempfile::tempdir().unwrap();
    let mut extracted = EventLog::open(
        &test.stores.js,
        ETL_STREAM,
        format!("etl.{env}.extracted.>"),
    )
    .await;
    let mut notifications = test.notifications().await;

    let processes = spawn_pipeline(&vars, logs.path());
    upstream(&github);
    // The run has started: stop everything while it is in flight.
    extracted
        .next_within(std::time::Duration::from_secs(30))
        .await
        .expect("the extractor published within 30 s");
    for process in processes {
        process.terminate().await;
    }

    let restarted = spawn_pipeline(&vars, logs.path());
    let notification =
        next_notification(&mut notifications, &restarted, "the run after the restart").await;
    assert_eq!(
        notification.status,
        RunStatus::Succeeded,
        "{}",
        notification.text
    );
    assert_eq!(notification.counts.inserted, 3);
    assert_eq!(stored_values(env).await.len(), 3);
    notifications
        .assert_quiet(std::time::Duration::from_secs(2))
        .await;
    for process in restarted {
        process.terminate().await;
    }
    test.clean_up().await;
}
