//! The services as conventional binaries, run as an operator runs them: `--help` lists every
//! variable with its default, `--version` prints the version, both exit at once without
//! connecting to anything; `--check-config` prints the effective configuration with every secret
//! redacted, or every problem at once.
//!
//! Every address the services could connect to (NATS, PostgreSQL, SMTP, GitHub, the OTLP
//! collector) points at one listener of the test's, which must see no connection at all.
//!
//! And the OpenTelemetry variables, checked on what a running extractor exports to a real OTLP
//! receiver.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::net::TcpListener;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use etl_tests::fake_github::{FakeGithub, NewCommit};
use shared::Source;
use shared::config::Spec;
use test_support::TestEnv;

use crate::support::otlp::OtlpReceiver;
use crate::support::pipeline_vars;
use crate::support::processes::{Process, bin_dir};

const SERVICES: [&str; 5] = [
    "extractor",
    "transformer",
    "loader",
    "notifier",
    "dashboard",
];

fn spec(service: &str) -> Spec {
    match service {
        "extractor" => extractor::config::spec(),
        "transformer" => transformer::config::spec(),
        "loader" => loader::config::spec(),
        "notifier" => notifier::config::spec(),
        "dashboard" => dashboard::config::spec(),
        other => panic!("{other} is not a service"),
    }
}

/// A listener that counts who connected to it.
struct Trap {
    listener: TcpListener,
    port: u16,
}

impl Trap {
    fn new() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        Self { listener, port }
    }

    /// Every connection made to it so far (the kernel accepted them even after their process
    /// ended).
    fn connections(&self) -> usize {
        let mut count = 0;
        loop {
            match self.listener.accept() {
                Ok(_) => count += 1,
                Err(err) if err.kind() == ErrorKind::WouldBlock => return count,
                Err(err) => panic!("accept failed: {err}"),
            }
        }
    }

    /// Every address a service reads, pointed at the trap.
    fn vars(&self) -> Vec<(String, String)> {
        let port = self.port;
        [
            ("NATS_URL", format!("nats://127.0.0.1:{port}")),
            (
                "DATABASE_URL",
                format!("postgres://covid@127.0.0.1:{port}/covid?sslmode=disable"),
            ),
            ("SMTP_URL", format!("smtp://127.0.0.1:{port}")),
            ("GITHUB_API_URL", format!("http://127.0.0.1:{port}")),
            ("GITHUB_RAW_URL", format!("http://127.0.0.1:{port}")),
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                format!("http://127.0.0.1:{port}"),
            ),
            ("METRICS_ADDR", "127.0.0.1:0".to_owned()),
            ("DASHBOARD_ADDR", "127.0.0.1:0".to_owned()),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect()
    }
}

/// Runs `service` with `args` and exactly `vars` (plus PATH and HOME); kills it if it has not
/// ended within 10 s. Returns its output and how long it ran.
fn run(service: &str, args: &[&str], vars: &[(String, String)]) -> (Output, Duration) {
    let started = Instant::now();
    let mut child = Command::new(bin_dir().join(service))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", std::env::var("HOME").unwrap_or_default())
        .envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("cannot run {service}: {err} (ETL_BIN_DIR: {:?})", bin_dir()));
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if started.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let elapsed = started.elapsed();
    (child.wait_with_output().unwrap(), elapsed)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn help_and_version_print_and_exit_at_once_without_connecting_anywhere() {
    let trap = Trap::new();
    let vars = trap.vars();
    let mut slowest = Duration::ZERO;
    for service in SERVICES {
        let spec = spec(service);
        for flag in ["--help", "-h"] {
            let (output, took) = run(service, &[flag], &vars);
            let stdout = text(&output.stdout);
            assert!(output.status.success(), "{service} {flag}: {output:?}");
            assert!(
                took < Duration::from_secs(1),
                "{service} {flag} took {took:?}"
            );
            slowest = slowest.max(took);
            assert!(stdout.contains("--check-config"), "{service}: {stdout}");
            for var in &spec.vars {
                assert!(
                    stdout.contains(&var.name),
                    "{service} {flag} does not list {}:\n{stdout}",
                    var.name
                );
                if let Some(default) = &var.default {
                    assert!(
                        stdout.contains(&format!("[default: {default}]")),
                        "{service} {flag} does not give {}'s default {default}:\n{stdout}",
                        var.name
                    );
                }
            }
        }
        for flag in ["--version", "-V"] {
            let (output, took) = run(service, &[flag], &vars);
            assert!(output.status.success(), "{service} {flag}: {output:?}");
            assert!(
                took < Duration::from_secs(1),
                "{service} {flag} took {took:?}"
            );
            slowest = slowest.max(took);
            assert_eq!(
                text(&output.stdout),
                format!("{service} {}\n", env!("CARGO_PKG_VERSION"))
            );
        }
        // A usage error is exit 2, as clap (and the conventions) say, and starts nothing either.
        let (output, _) = run(service, &["--no-such-flag"], &vars);
        assert_eq!(output.status.code(), Some(2), "{service}: {output:?}");
    }
    assert_eq!(
        trap.connections(),
        0,
        "--help, --version or a usage error connected somewhere"
    );
    eprintln!("binaries: slowest --help/--version took {slowest:?}");
}

/// The rows of `--check-config`'s table: name → (source, value).
fn rows(stdout: &str) -> BTreeMap<String, (String, String)> {
    stdout
        .lines()
        .skip(1)
        .filter(|line| line.starts_with("  "))
        .map(|line| {
            let mut parts = line.split_whitespace();
            let name = parts.next().unwrap_or_default().to_owned();
            let source = parts.next().unwrap_or_default().to_owned();
            let value = parts.collect::<Vec<_>>().join(" ");
            (name, (source, value))
        })
        .collect()
}

#[test]
fn check_config_shows_every_effective_value_and_where_it_came_from() {
    let trap = Trap::new();
    for service in SERVICES {
        let mut vars = trap.vars();
        vars.push(("RUST_LOG".to_owned(), "debug".to_owned()));
        let (output, _) = run(service, &["--check-config", "--log-format", "json"], &vars);
        let stdout = text(&output.stdout);
        assert!(
            output.status.success(),
            "{service}: {stdout}{}",
            text(&output.stderr)
        );
        assert!(
            stdout.starts_with(&format!(
                "{service} {}: configuration is valid\n",
                env!("CARGO_PKG_VERSION")
            )),
            "{stdout}"
        );
        let rows = rows(&stdout);
        for var in spec(service).vars.iter().filter(|v| v.family.is_none()) {
            let (source, value) = rows
                .get(&var.name)
                .unwrap_or_else(|| panic!("{service}: no row for {}:\n{stdout}", var.name));
            let expected = if var.name == "LOG_FORMAT" {
                ("flag", "json".to_owned())
            } else if let Some((_, given)) = vars.iter().find(|(name, _)| *name == var.name) {
                ("set", var.shown(given))
            } else if let Some(default) = &var.default {
                ("default", default.clone())
            } else {
                ("unset", String::new())
            };
            assert_eq!(
                (source.as_str(), value.clone()),
                (expected.0, expected.1),
                "{service} {}:\n{stdout}",
                var.name
            );
        }
        let port = trap.port;
        assert!(
            stdout.contains(&format!(
                "traces: exported over OTLP http/protobuf to http://127.0.0.1:{port}/v1/traces"
            )),
            "{stdout}"
        );
        assert!(
            stdout.contains(&format!("service.name={service},service.version=")),
            "{stdout}"
        );
    }
    assert_eq!(trap.connections(), 0, "--check-config connected somewhere");
}

// The example seed of the NKEY documentation.
const USER_SEED: &str = "SUANQDPB2RUOE4ETUA26CNX7FUKE5ZZKFCQIIW63OX225F2CO7UEXTM7ZY";

#[test]
fn check_config_redacts_every_secret() {
    let trap = Trap::new();
    let port = trap.port;
    let dir = tempfile::tempdir().unwrap();
    let seed_file = dir.path().join("service.nk");
    std::fs::write(&seed_file, format!("{USER_SEED}\n")).unwrap();
    let password_file = dir.path().join("pg-password");
    std::fs::write(&password_file, "canary-pg-file-5c1e\n").unwrap();
    let canaries = [
        "canary-nats-url-7a1f",
        "canary-nats-pass-31d9",
        "canary-nats-token-c4e2",
        "canary-pg-url-90ab",
        "canary-pg-query-77de",
        "canary-pg-file-5c1e",
        "canary-github-token-e8f0",
        "canary-github-url-1b2c",
        "canary-smtp-url-3d4e",
        "canary-smtp-pass-5f60",
        "canary-otlp-header-a1b2",
        "canary-otlp-url-c3d4",
        USER_SEED,
    ];
    let vars: Vec<(String, String)> = [
        (
            "NATS_URL",
            format!("nats://ops:canary-nats-url-7a1f@127.0.0.1:{port}"),
        ),
        ("NATS_NKEY_FILE", seed_file.display().to_string()),
        ("NATS_USER", "ops".to_owned()),
        ("NATS_PASSWORD", "canary-nats-pass-31d9".to_owned()),
        ("NATS_TOKEN", "canary-nats-token-c4e2".to_owned()),
        (
            "DATABASE_URL",
            format!(
                "postgres://covid:canary-pg-url-90ab@127.0.0.1:{port}/covid?sslmode=disable&password=canary-pg-query-77de"
            ),
        ),
        ("DATABASE_PASSWORD_FILE", password_file.display().to_string()),
        ("GITHUB_TOKEN", "canary-github-token-e8f0".to_owned()),
        (
            "GITHUB_API_URL",
            format!("http://x-access-token:canary-github-url-1b2c@127.0.0.1:{port}"),
        ),
        (
            "SMTP_URL",
            format!("smtps://mailer:canary-smtp-url-3d4e@127.0.0.1:{port}"),
        ),
        ("SMTP_USERNAME", "mailer".to_owned()),
        ("SMTP_PASSWORD", "canary-smtp-pass-5f60".to_owned()),
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            "api-key=canary-otlp-header-a1b2".to_owned(),
        ),
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://otlp:canary-otlp-url-c3d4@127.0.0.1:{port}"),
        ),
        ("METRICS_ADDR", "127.0.0.1:0".to_owned()),
        ("DASHBOARD_ADDR", "127.0.0.1:0".to_owned()),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect();
    for service in SERVICES {
        let (output, _) = run(service, &["--check-config"], &vars);
        let all = format!("{}\n{}", text(&output.stdout), text(&output.stderr));
        for canary in canaries {
            assert!(!all.contains(canary), "{service} printed {canary}:\n{all}");
        }
        assert!(output.status.success(), "{service}:\n{all}");
        let rows = rows(&text(&output.stdout));
        for var in spec(service).vars {
            let set = vars.iter().any(|(name, _)| *name == var.name);
            if set && var.kind == shared::config::Kind::Secret {
                assert_eq!(
                    rows.get(&var.name),
                    Some(&("set".to_owned(), "[redacted]".to_owned())),
                    "{service} {}",
                    var.name
                );
            }
        }
        assert!(
            rows["NATS_URL"]
                .1
                .starts_with("nats://[redacted]@127.0.0.1:"),
            "{service}: {:?}",
            rows["NATS_URL"]
        );
        // A secret is refused as a flag, and the refusal does not show it either.
        let (output, _) = run(
            service,
            &["--check-config", "--nats-password", "canary-flag-9e9e"],
            &vars,
        );
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{service}: {stderr}");
        assert!(
            stderr.contains("NATS_PASSWORD: holds a secret, which must come from the environment"),
            "{stderr}"
        );
        assert!(
            !stderr.contains("canary-flag-9e9e")
                && !text(&output.stdout).contains("canary-flag-9e9e")
        );
    }
    assert_eq!(trap.connections(), 0);
}

#[test]
fn check_config_lists_every_problem_at_once_and_exits_1() {
    let trap = Trap::new();
    let bad: [(&str, &str); 10] = [
        ("NATS_URL", "http://127.0.0.1:4222"),
        ("ETL_ENV", "Prod!"),
        ("ETL_ENVS", "A,b"),
        ("RUST_LOG", "info,[bad"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_RESOURCE_ATTRIBUTES", "team"),
        ("POLL_INTERVAL", "soon"),
        ("MAX_PAYLOAD_BYTES", "lots"),
        ("MAX_REMOVED_SHARE", "2"),
        ("EMAIL_FROM", "nobody"),
    ];
    for service in SERVICES {
        let mut vars = trap.vars();
        vars.extend(bad.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        vars.push(("DASHBOARD_ADDR".to_owned(), "localhost".to_owned()));
        let spec = spec(service);
        let expected: Vec<&str> = bad
            .iter()
            .map(|(name, _)| *name)
            .chain(["DASHBOARD_ADDR"])
            .filter(|name| spec.vars.iter().any(|v| v.name == *name))
            .collect();
        let (output, took) = run(service, &["--check-config"], &vars);
        let stdout = text(&output.stdout);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{service}: {stdout}{stderr}");
        assert!(took < Duration::from_secs(1), "{service} took {took:?}");
        assert!(
            stdout.starts_with(&format!(
                "{service} {}: configuration is invalid ({} problem(s), listed on stderr)",
                env!("CARGO_PKG_VERSION"),
                expected.len()
            )),
            "{stdout}"
        );
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), expected.len(), "{service}:\n{stderr}");
        for name in &expected {
            let prefix = format!("{service}: invalid configuration: {name}: ");
            assert!(
                lines.iter().any(|line| line.starts_with(&prefix)),
                "{service} does not name {name}:\n{stderr}"
            );
        }
        assert!(expected.len() >= 5, "{service}: {expected:?}");

        // Without --check-config the service refuses to start, with the same lines.
        let (output, _) = run(service, &[], &vars);
        assert_eq!(output.status.code(), Some(1));
        assert_eq!(text(&output.stderr), stderr);
        assert!(output.stdout.is_empty());
    }
    assert_eq!(trap.connections(), 0);
}

/// The resource attributes of every export request `otlp` received, as strings.
fn exported_resources(otlp: &OtlpReceiver) -> Vec<BTreeMap<String, String>> {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    use prost::Message as _;

    otlp.bodies()
        .iter()
        .flat_map(|body| {
            ExportTraceServiceRequest::decode(body.clone())
                .unwrap()
                .resource_spans
        })
        .map(|spans| {
            spans
                .resource
                .into_iter()
                .flat_map(|r| r.attributes)
                .filter_map(|kv| match kv.value?.value? {
                    Value::StringValue(s) => Some((kv.key, s)),
                    _ => None,
                })
                .collect()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_opentelemetry_variables_mean_what_the_specification_says() {
    let test = TestEnv::new("otelvars").await;
    let env = &test.env;
    let github = FakeGithub::start().await.unwrap();
    let otlp = OtlpReceiver::start().await;
    let logs = tempfile::tempdir().unwrap();
    let mut events = test.events().await;
    let extracted = shared::subjects::extracted(env, &Source::NYT);
    let nyt = Source::NYT.default_location().unwrap();
    let csv = |day: u32| format!("date,cases,deaths\n2020-03-0{day},100,2\n");

    // OTEL_SDK_DISABLED=true: the extractor works, and exports nothing though an endpoint is set.
    let mut vars = pipeline_vars(env, &github);
    vars.set(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        format!("{}/v1/traces", otlp.url),
    );
    vars.set("OTEL_SDK_DISABLED", "true");
    let extractor = Process::spawn("extractor", &vars, logs.path());
    github.add(NewCommit::new(&nyt.repo, &nyt.path, csv(1)));
    events.next_on(&extracted, Duration::from_secs(30)).await;
    extractor.terminate().await;
    assert!(
        otlp.bodies().is_empty(),
        "spans were exported with OTEL_SDK_DISABLED=true"
    );

    // The signal's endpoint is used as it is and wins over the base (spans sent to the base would
    // go to /elsewhere/v1/traces, which the receiver does not record; the metrics, which the
    // base is for, go to /elsewhere/v1/metrics); OTEL_SERVICE_NAME wins over the list's
    // service.name; the list is percent-decoded; service.version is the binary's.
    vars.set("OTEL_SDK_DISABLED", "false");
    vars.set(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        format!("{}/elsewhere", otlp.url),
    );
    vars.set("OTEL_SERVICE_NAME", "extractor-eu");
    vars.set(
        "OTEL_RESOURCE_ATTRIBUTES",
        "deployment.environment=e2e%20one,service.name=overridden",
    );
    let extractor = Process::spawn("extractor", &vars, logs.path());
    github.add(NewCommit::new(&nyt.repo, &nyt.path, csv(2)));
    events.next_on(&extracted, Duration::from_secs(30)).await;
    // Exiting shuts the provider down, which sends the last batch.
    extractor.terminate().await;
    let resources = exported_resources(&otlp);
    assert!(!resources.is_empty(), "no span was exported");
    for resource in &resources {
        assert_eq!(resource["service.name"], "extractor-eu", "{resource:?}");
        assert_eq!(
            resource["service.version"],
            env!("CARGO_PKG_VERSION"),
            "{resource:?}"
        );
        assert_eq!(
            resource["deployment.environment"], "e2e one",
            "{resource:?}"
        );
        assert!(resource.contains_key("telemetry.sdk.name"), "{resource:?}");
    }
    test.clean_up().await;
}
