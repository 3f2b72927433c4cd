//! Past one machine: a three-node JetStream cluster of real `nats-server` processes, streams and
//! buckets with three replicas, and two replicas of each pipeline service as processes. While a
//! history is replayed, the test kills (SIGKILL) the JetStream meta leader, then the leader of
//! the `ETL` stream, then one replica of each service: the tables end exact, every run is in
//! `etl_runs` once, and each run is notified once.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use etl_tests::fake_github::FakeGithub;
use shared::config::{NatsConfig, Vars};
use shared::events::{EmailFate, Notification, RunStatus};
use shared::nats::{ETL_STREAM, NOTIFY_STREAM, Stores};
use shared::{Env, Shutdown};
use test_support::stack::{self, Identity};
use test_support::{EventLog, eventually, free_port, unique_env, wait_consumed};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::processes::Process;
use crate::support::{emails_for, upstream_commits};

/// One `nats-server` of the cluster: its ports, store and config, and the process while it runs.
struct Node {
    name: String,
    port: u16,
    monitor: u16,
    config: PathBuf,
    process: Option<tokio::process::Child>,
}

/// Three `nats-server` processes routed to each other, JetStream on, no auth (the test's own).
struct Cluster {
    nodes: Vec<Node>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    async fn start() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let ports: Vec<[u16; 3]> = (0..3)
            .map(|_| [free_port(), free_port(), free_port()])
            .collect();
        let mut nodes = Vec::new();
        for (i, [port, route, monitor]) in ports.iter().copied().enumerate() {
            let name = format!("n{}", i + 1);
            let routes: Vec<String> = ports
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, p)| format!("\"nats-route://127.0.0.1:{}\"", p[1]))
                .collect();
            let store = dir.path().join(&name);
            let config = dir.path().join(format!("{name}.conf"));
            std::fs::write(
                &config,
                format!(
                    "listen: \"127.0.0.1:{port}\"\nserver_name: \"{name}\"\nhttp: \"127.0.0.1:{monitor}\"\n\
                     jetstream {{ store_dir: \"{}\" }}\n\
                     cluster {{ name: \"covid-etl-test\", listen: \"127.0.0.1:{route}\", routes: [{}] }}\n",
                    store.display(),
                    routes.join(", ")
                ),
            )
            .unwrap();
            nodes.push(Node {
                name,
                port,
                monitor,
                config,
                process: None,
            });
        }
        let mut cluster = Cluster { nodes, _dir: dir };
        for i in 0..3 {
            cluster.spawn(i);
        }
        let monitor = cluster.nodes[0].monitor;
        eventually(
            "a JetStream meta leader",
            Duration::from_secs(30),
            || async move { meta_leader(monitor).await },
        )
        .await;
        cluster
    }

    fn spawn(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let log = std::fs::File::create(node.config.with_extension("log")).unwrap();
        node.process = Some(
            tokio::process::Command::new(stack::nats_server_binary())
                .arg("-c")
                .arg(&node.config)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .kill_on_drop(true)
                .spawn()
                .expect("nats-server starts"),
        );
    }

    /// Every node's address, as `NATS_URL` lists a cluster.
    fn url(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("nats://127.0.0.1:{}", n.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn index(&self, name: &str) -> usize {
        self.nodes
            .iter()
            .position(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node {name}"))
    }

    /// Kills node `name` at once (SIGKILL), then starts it again on its store once `down_for`
    /// has passed, and waits until the cluster has a meta leader again.
    async fn kill_and_restart(&mut self, name: &str, down_for: Duration) {
        let i = self.index(name);
        if let Some(mut process) = self.nodes[i].process.take() {
            process.kill().await.unwrap();
        }
        tokio::time::sleep(down_for).await;
        self.spawn(i);
        let monitor = self.nodes[i].monitor;
        eventually(
            "the node back in the cluster",
            Duration::from_secs(30),
            || async move { meta_leader(monitor).await },
        )
        .await;
    }

    /// The name of the JetStream meta leader, asked of any node that answers.
    async fn meta_leader(&self) -> String {
        for node in &self.nodes {
            if let Some(leader) = meta_leader(node.monitor).await {
                return leader;
            }
        }
        panic!("no node knows the meta leader")
    }
}

/// The meta leader as the node with monitoring port `monitor` sees it (`GET /jsz`).
async fn meta_leader(monitor: u16) -> Option<String> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", monitor))
        .await
        .ok()?;
    stream
        .write_all(b"GET /jsz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.ok()?;
    let response = String::from_utf8_lossy(&response);
    let body = response.split_once("\r\n\r\n")?.1;
    let jsz: serde_json::Value = serde_json::from_str(body).ok()?;
    jsz["meta_cluster"]["leader"]
        .as_str()
        .filter(|leader| !leader.is_empty())
        .map(str::to_owned)
}

/// The cluster as the test's own client sees it, with everything declared with three replicas.
async fn stores(cluster: &Cluster) -> Stores {
    let mut config = NatsConfig::local(cluster.url());
    config.replicas = 3;
    let client = shared::nats::connect(&config, "covid-etl-test", &Shutdown::new())
        .await
        .unwrap();
    shared::nats::setup(client, 3).await.unwrap()
}

/// Version `k` of both upstream files: days 1 to k + 2 of March 2020; from version 4 on, NYT
/// revises the cases of March 2nd.
fn version(k: u32) -> (String, String) {
    let mut nyt = String::from("date,cases,deaths\n");
    let mut jhu = String::from("Date,Country/Region,Province/State,Confirmed,Recovered,Deaths\n");
    for day in 1..=k + 2 {
        let cases = day * 100 + if day == 2 && k >= 4 { 7 } else { 0 };
        nyt.push_str(&format!("2020-03-{day:02},{cases},{day}\n"));
        jhu.push_str(&format!(
            "2020-03-{day:02},US,,{},{},{day}\n",
            day * 100,
            day * 3
        ));
    }
    (nyt, jhu)
}

/// What `us_daily` holds after version `k`.
fn expected_rows(k: u32) -> Vec<(String, i64, i64, Option<i64>)> {
    (1..=k + 2)
        .map(|day| {
            let cases = day * 100 + if day == 2 && k >= 4 { 7 } else { 0 };
            (
                format!("2020-03-{day:02}"),
                i64::from(cases),
                i64::from(day),
                Some(i64::from(day * 3)),
            )
        })
        .collect()
}

/// `us_daily` of `env` as `(date, cases, deaths, recovered)`, or `None` before the loader has
/// made it.
async fn stored_rows(env: &Env) -> Option<Vec<(String, i64, i64, Option<i64>)>> {
    let sql = format!(
        "SELECT date::text, cases, deaths, recovered FROM \"{env}\".us_daily ORDER BY date"
    );
    let rows = test_support::connect().await.query(&sql, &[]).await.ok()?;
    Some(
        rows.iter()
            .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3)))
            .collect(),
    )
}

/// The variables of `identity`'s service against the cluster: the stack's PostgreSQL and SMTP as
/// usual, the cluster in place of the stack's NATS.
fn cluster_vars(identity: Identity, env: &Env, cluster: &Cluster, github: &FakeGithub) -> Vars {
    let mut vars = stack::vars_for(identity, env);
    for (name, value) in github.env_vars() {
        vars.set(name, value);
    }
    vars.set("NATS_URL", cluster.url())
        .set("NATS_REPLICAS", "3")
        .set("NATS_NKEY_FILE", "")
        .set("NATS_CA_FILE", "")
        .set("POLL_INTERVAL", "300ms")
        .set("LEASE_PERIOD", "2s")
        .set("METRICS_ADDR", "127.0.0.1:0");
    vars
}

const SERVICES: [(&str, Identity); 4] = [
    ("extractor", Identity::Extractor),
    ("transformer", Identity::Transformer),
    ("loader", Identity::Loader),
    ("notifier", Identity::Notifier),
];

/// Waits until every stage's consumer of `env` has settled every message (a notification may
/// have waited out the disruption).
async fn settled(stores: &Stores, env: &Env) {
    for stage in ["transformer", "loader", "notifier"] {
        wait_consumed(
            &stores.js,
            ETL_STREAM,
            &format!("{stage}-{env}"),
            Duration::from_secs(120),
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replayed_history_survives_killed_leaders_and_replicas_exactly() {
    let mut cluster = Cluster::start().await;
    let stores = stores(&cluster).await;
    let env = unique_env("cluster");
    let github = FakeGithub::start().await.unwrap();
    let logs = tempfile::tempdir().unwrap();
    let mut replicas: BTreeMap<&str, Vec<Process>> = BTreeMap::new();
    for (name, identity) in SERVICES {
        for replica in ["a", "b"] {
            let dir = logs.path().join(format!("{name}-{replica}"));
            std::fs::create_dir_all(&dir).unwrap();
            let mut vars = cluster_vars(identity, &env, &cluster, &github);
            vars.set("GITHUB_TOKEN", format!("replica-{replica}"));
            replicas
                .entry(name)
                .or_default()
                .push(Process::spawn_exact(name, &vars, &dir));
        }
    }

    let wait_for = |k: u32| {
        let env = env.clone();
        async move {
            eventually(
                &format!("version {k} stored"),
                Duration::from_secs(120),
                || {
                    let env = env.clone();
                    async move { (stored_rows(&env).await? == expected_rows(k)).then_some(()) }
                },
            )
            .await;
        }
    };
    let publish = |k: u32| {
        let (nyt, jhu) = version(k);
        github.add_many(upstream_commits(&nyt, &jhu));
    };

    publish(1);
    wait_for(1).await;

    // The meta leader dies mid-run.
    publish(2);
    let leader = cluster.meta_leader().await;
    cluster
        .kill_and_restart(&leader, Duration::from_secs(2))
        .await;
    wait_for(2).await;

    // The ETL stream's leader dies mid-run.
    publish(3);
    let mut etl = stores.js.get_stream(ETL_STREAM).await.unwrap();
    let info = etl.info().await.unwrap();
    let leader = info
        .cluster
        .as_ref()
        .and_then(|c| c.leader.clone())
        .expect("the ETL stream has a leader");
    cluster
        .kill_and_restart(&leader, Duration::from_secs(2))
        .await;
    wait_for(3).await;

    // One replica of each service dies; the others carry on. The pipeline is idle then: a
    // notifier killed between the mail server's answer and its record could send that email
    // again (README, "When a message fails").
    settled(&stores, &env).await;
    for processes in replicas.values_mut() {
        processes.remove(0).kill().await;
    }
    publish(4);
    wait_for(4).await;
    publish(5);
    wait_for(5).await;
    settled(&stores, &env).await;

    // Every run is in etl_runs once, and each is notified once (a run overtaken by a later one
    // is recorded as superseded and not announced).
    let runs: Vec<(String, String)> = test_support::connect()
        .await
        .query(
            &format!("SELECT run_id, status FROM \"{env}\".etl_runs ORDER BY run_id"),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    let mut ids: Vec<&String> = runs.iter().map(|(id, _)| id).collect();
    ids.dedup();
    assert_eq!(ids.len(), runs.len(), "each run once: {runs:?}");
    let recorded: Vec<&String> = runs
        .iter()
        .filter(|(_, status)| status != "superseded")
        .map(|(id, _)| id)
        .collect();
    assert!(!recorded.is_empty(), "{runs:?}");
    // The notifications, read from the stream's start now that every stage is done.
    let mut notifications =
        EventLog::open(&stores.js, NOTIFY_STREAM, shared::subjects::notify(&env)).await;
    let mut notified: BTreeMap<String, usize> = BTreeMap::new();
    let mut emailed = 0;
    while let Some(message) = notifications.next_within(Duration::from_secs(3)).await {
        if let Ok(n) = serde_json::from_slice::<Notification>(&message.payload) {
            assert_eq!(n.status, RunStatus::Succeeded, "{}", n.text);
            *notified.entry(n.run_id.to_string()).or_default() += 1;
            // Runs that change nothing are told on NATS only (NOTIFY_UNCHANGED's default).
            emailed += usize::from(n.email != EmailFate::Skipped);
        }
    }
    assert!(notified.values().all(|n| *n == 1), "{notified:?}");
    assert_eq!(
        notified.keys().collect::<Vec<_>>(),
        recorded,
        "each recorded run is notified"
    );
    let mails = emails_for(&env, emailed, Duration::from_secs(30)).await;
    assert_eq!(mails.len(), emailed, "one email per run that changed data");

    for processes in replicas.into_values() {
        for process in processes {
            process.terminate().await;
        }
    }
    test_support::drop_schema(&env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_made_with_one_replica_are_scaled_up_in_place_by_the_operator() {
    let cluster = Cluster::start().await;
    let client = shared::nats::connect(
        &NatsConfig::local(cluster.url()),
        "covid-etl-test",
        &Shutdown::new(),
    )
    .await
    .unwrap();
    // A stack that ran on one replica, with data in it.
    let stores = shared::nats::setup(client.clone(), 1).await.unwrap();
    stores
        .raw
        .put("before", &mut &b"kept across the change"[..])
        .await
        .unwrap();
    let counts = shared::nats::replica_counts(&stores.js).await.unwrap();
    assert!(counts.iter().all(|(_, n)| *n == 1), "{counts:?}");

    // Services declaring three replicas leave what exists alone; the operator scales it up.
    shared::nats::setup(client, 3).await.unwrap();
    assert_eq!(
        shared::nats::replica_counts(&stores.js).await.unwrap(),
        counts
    );
    let scaled = shared::nats::scale_up(&stores.js, 3).await.unwrap();
    assert_eq!(scaled.len(), counts.len(), "{scaled:?}");
    let counts = shared::nats::replica_counts(&stores.js).await.unwrap();
    assert!(counts.iter().all(|(_, n)| *n == 3), "{counts:?}");
    assert!(
        shared::nats::scale_up(&stores.js, 3)
            .await
            .unwrap()
            .is_empty(),
        "a second run changes nothing"
    );
    let mut kept = Vec::new();
    stores
        .raw
        .get("before")
        .await
        .unwrap()
        .read_to_end(&mut kept)
        .await
        .unwrap();
    assert_eq!(kept, b"kept across the change");
}
