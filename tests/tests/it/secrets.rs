//! Secrets are never printed. The five services run as their own processes with every credential
//! set to a value nothing else contains (a canary): the GitHub token, the SMTP password (of a real
//! TLS server that requires AUTH with it), each identity's NATS key seed and the PostgreSQL
//! passwords of the stack. One upstream change runs end to end at `RUST_LOG=trace` with JSON logs
//! and OTLP export, the dashboard answers from the database, and `--check-config` runs for every
//! service. Then every log line, every raw OTLP export body, every event and notification, every
//! email file and every `--check-config` output is searched for every canary (and the base64 forms
//! SMTP AUTH would put on the wire): none may be there.

use std::hash::{BuildHasher, Hasher};
use std::path::Path;
use std::time::Duration;

use crate::support::otlp::OtlpReceiver;
use crate::support::pipeline_vars;
use crate::support::processes::{Process, bin_dir, next_notification};
use etl_tests::fake_github::{FakeGithub, NewCommit};
use shared::Source;
use shared::config::Vars;
use shared::events::RunStatus;
use shared::nats::NOTIFY_STREAM;
use test_support::smtp::{Mode, TlsSink, USER};
use test_support::stack::{self, Identity};
use test_support::{EventLog, TestEnv, eventually, free_port};

const NYT: &str = "date,cases,deaths\n2020-03-01,100,2\n2020-03-02,150,3\n2020-03-03,210,5\n";
const JHU: &str = "Date,Country/Region,Province/State,Confirmed,Recovered,Deaths\n\
2020-03-01,US,,100,5,2\n2020-03-02,US,,150,7,3\n2020-03-03,US,,210,8,5\n";
const PIPELINE: [&str; 4] = ["extractor", "transformer", "loader", "notifier"];
const SERVICES: [&str; 5] = [
    "extractor",
    "transformer",
    "loader",
    "notifier",
    "dashboard",
];
const WAIT: Duration = Duration::from_secs(60);

/// One secret value, and what it is (for the report, which never shows the value).
struct Canary {
    what: String,
    value: String,
}

/// Every secret the test's processes hold, in every form that could be printed.
struct Canaries(Vec<Canary>);

impl Canaries {
    fn add(&mut self, what: impl Into<String>, value: impl Into<String>) {
        let (what, value) = (what.into(), value.into());
        assert!(
            value.len() >= 16,
            "a canary must be distinctive: {what} has {} characters",
            value.len()
        );
        self.0.push(Canary { what, value });
    }

    /// Every canary found in `text`, as `what` with the value itself replaced.
    fn found_in(&self, text: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|canary| text.contains(&canary.value))
            .map(|canary| canary.what.clone())
            .collect()
    }

    /// `text` with every canary replaced by its name, to show where one was found without
    /// showing it.
    fn masked(&self, text: &str) -> String {
        self.0.iter().fold(text.to_owned(), |text, canary| {
            text.replace(&canary.value, &format!("<{}>", canary.what))
        })
    }
}

/// What was searched: where it came from, and its text.
#[derive(Default)]
struct Haystack {
    sources: Vec<(String, String)>,
}

impl Haystack {
    fn add(&mut self, place: impl Into<String>, bytes: &[u8]) {
        // Canaries are ASCII: invalid UTF-8 around them (protobuf) does not hide them.
        self.sources
            .push((place.into(), String::from_utf8_lossy(bytes).into_owned()));
    }

    /// `canary in place: masked excerpt`, for every canary found anywhere.
    fn leaks(&self, canaries: &Canaries) -> Vec<String> {
        let mut leaks = Vec::new();
        for (place, text) in &self.sources {
            for what in canaries.found_in(text) {
                let masked = canaries.masked(text);
                let at = masked.find(&format!("<{what}>")).unwrap_or(0);
                let start = masked.floor_char_boundary(at.saturating_sub(300));
                let end = masked.ceil_char_boundary((at + 300).min(masked.len()));
                leaks.push(format!("{what} in {place}: …{}…", &masked[start..end]));
            }
        }
        leaks
    }

    fn bytes(&self) -> usize {
        self.sources.iter().map(|(_, text)| text.len()).sum()
    }
}

fn random_hex() -> String {
    let state = std::collections::hash_map::RandomState::new();
    let mut hex = String::new();
    for salt in 0..2u64 {
        let mut hasher = state.build_hasher();
        hasher.write_u64(salt);
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos(),
        );
        hex.push_str(&format!("{:016x}", hasher.finish()));
    }
    hex
}

/// Standard base64 with padding, as SMTP AUTH encodes credentials.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let hex = || std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok();
        match (bytes[i], hex().and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).expect("a UTF-8 password")
}

/// The value of `name` in `identity`'s file of variables (`scripts/stack.sh up` writes them).
fn identity_var(identity: Identity, name: &str) -> String {
    stack::identity_file(identity)
        .unwrap_or_else(|| {
            panic!(
                "no $STACK_DIR/env.{}: the locked-down stack (scripts/stack.sh up) is needed",
                identity.name()
            )
        })
        .into_iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value)
        .unwrap_or_else(|| panic!("env.{} sets no {name}", identity.name()))
}

/// The stack's own credentials: every identity's NATS key seed, and the password in the loader's
/// and the dashboard's `DATABASE_URL` (as written in the URL and decoded).
fn stack_canaries(canaries: &mut Canaries) {
    for identity in Identity::ALL {
        let file = identity_var(identity, "NATS_NKEY_FILE");
        let seed = std::fs::read_to_string(&file)
            .unwrap_or_else(|err| panic!("the NKEY seed {file}: {err}"));
        let seed = seed.trim();
        assert!(seed.starts_with('S'), "{file} holds an NKEY seed");
        canaries.add(format!("the NKEY seed of {}", identity.name()), seed);
    }
    for identity in [Identity::Loader, Identity::Dashboard] {
        let url = identity_var(identity, "DATABASE_URL");
        let parsed = url::Url::parse(&url).expect("DATABASE_URL is a URL");
        let encoded = parsed
            .password()
            .unwrap_or_else(|| panic!("the DATABASE_URL of {} has a password", identity.name()));
        let decoded = percent_decode(encoded);
        if decoded != encoded {
            canaries.add(
                format!(
                    "the PostgreSQL password of {} (URL-encoded)",
                    identity.name()
                ),
                encoded,
            );
        }
        canaries.add(
            format!("the PostgreSQL password of {}", identity.name()),
            decoded,
        );
    }
}

/// `GET path` on the dashboard over HTTP/1.1: (status, body).
async fn get(port: u16, path: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response))
        .await
        .ok()?
        .ok()?;
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    Some((status, body))
}

/// The variables of service `name`: `vars` with its NATS identity laid over them, and its
/// `NATS_URL` holding a user and `nats_password` (a server that authenticates by NKEY ignores
/// them, but a URL with credentials must never be printed either).
fn service_vars(name: &str, vars: &Vars, nats_password: &str) -> Vars {
    let identity = Identity::of(name).unwrap_or_else(|| panic!("{name} is a service"));
    let mut vars = stack::as_identity(vars, identity);
    let url = vars.get("NATS_URL").expect("the identity's NATS_URL");
    let mut url = url::Url::parse(url).expect("NATS_URL is a URL");
    url.set_username("secrets").unwrap();
    url.set_password(Some(nats_password)).unwrap();
    vars.set("NATS_URL", url.as_str());
    vars
}

/// `<binary> --check-config` of `name` with exactly `vars`: (success, stdout, stderr).
fn check_config(name: &str, vars: &Vars) -> (bool, String, String) {
    let output = std::process::Command::new(bin_dir().join(name))
        .arg("--check-config")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", std::env::var("HOME").unwrap_or_default())
        .envs(vars.iter())
        .output()
        .unwrap_or_else(|err| panic!("cannot run {name} --check-config: {err}"));
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Every message the stream stores under `filter`, raw, until none comes for two seconds.
async fn raw_messages(log: &mut EventLog) -> Vec<(String, Vec<u8>)> {
    let mut messages = Vec::new();
    while let Some(message) = log.next_within(Duration::from_secs(2)).await {
        messages.push((message.subject.to_string(), message.payload.to_vec()));
    }
    messages
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files.sort();
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_credential_is_ever_printed_in_logs_spans_events_emails_or_check_config() {
    let test = TestEnv::new("secrets").await;
    let env = &test.env;

    // The canaries: the test's own, and the stack's.
    let mut canaries = Canaries(Vec::new());
    let github_token = format!("ghp_canary_{}", random_hex());
    let smtp_password = format!("smtp_canary_{}", random_hex());
    let nats_password = format!("nats_canary_{}", random_hex());
    let smtp_url_password = format!("smtp_url_canary_{}", random_hex());
    canaries.add("GITHUB_TOKEN", &github_token);
    canaries.add("SMTP_PASSWORD", &smtp_password);
    canaries.add("the password in NATS_URL", &nats_password);
    canaries.add("the password in SMTP_URL", &smtp_url_password);
    canaries.add(
        "SMTP_PASSWORD as AUTH PLAIN",
        base64(format!("\0{USER}\0{smtp_password}").as_bytes()),
    );
    canaries.add(
        "SMTP_PASSWORD as AUTH LOGIN",
        base64(smtp_password.as_bytes()),
    );
    stack_canaries(&mut canaries);

    // The searcher finds each canary where it is, and only there.
    for canary in &canaries.0 {
        let mut haystack = Haystack::default();
        haystack.add(
            "self-check",
            format!("{{\"a\":\"x{}y\"}}", canary.value).as_bytes(),
        );
        haystack.add("self-check, clean", b"nothing secret here");
        let leaks = haystack.leaks(&canaries);
        assert_eq!(
            leaks.len(),
            1,
            "the searcher misses {}: {leaks:?}",
            canary.what
        );
        assert!(
            leaks[0].starts_with(&format!("{} in self-check:", canary.what))
                && !leaks[0].contains(&canary.value),
            "{}",
            canaries.masked(&leaks[0])
        );
    }
    assert_eq!(
        base64(b"\0mailer\0hunter2"),
        "AG1haWxlcgBodW50ZXIy",
        "base64 as RFC 4648 has it"
    );

    // The pipeline, with every credential set, tracing everything.
    let github = FakeGithub::start().await.unwrap();
    let otlp = OtlpReceiver::start().await;
    let sink = TlsSink::start(Mode::StartTls, &smtp_password).await;
    let mut vars = pipeline_vars(env, &github);
    vars.set("GITHUB_TOKEN", &github_token)
        .set(
            "DATABASE_URL",
            identity_var(Identity::Loader, "DATABASE_URL"),
        )
        .set("RUST_LOG", "trace")
        .set("LOG_FORMAT", "json")
        .set("OTEL_EXPORTER_OTLP_ENDPOINT", &otlp.url)
        .set("SMTP_TIMEOUT", "10s")
        .set("STALE_AFTER", "off");
    for (name, value) in sink.smtp_vars(&smtp_password) {
        vars.set(name, value);
    }
    // Credentials in SMTP_URL too (SMTP_USERNAME and SMTP_PASSWORD win, but the URL is kept).
    let mut smtp_url = url::Url::parse(&sink.url()).unwrap();
    smtp_url.set_username(USER).unwrap();
    smtp_url.set_password(Some(&smtp_url_password)).unwrap();
    vars.set("SMTP_URL", smtp_url.as_str());
    let dashboard_port = free_port();
    let mut dashboard_vars = vars.clone();
    dashboard_vars
        .set(
            "DATABASE_URL",
            identity_var(Identity::Dashboard, "DATABASE_URL"),
        )
        .set("DASHBOARD_ADDR", format!("127.0.0.1:{dashboard_port}"));

    let logs = tempfile::tempdir().unwrap();
    let mut events = test.events().await;
    let mut notify = EventLog::open(
        &test.stores.js,
        NOTIFY_STREAM,
        shared::subjects::notify(env),
    )
    .await;
    let mut notifications = test.notifications().await;
    let mut processes: Vec<Process> = PIPELINE
        .iter()
        .map(|name| {
            Process::spawn_exact(
                name,
                &service_vars(name, &vars, &nats_password),
                logs.path(),
            )
        })
        .collect();
    let nyt = Source::NYT.default_location().unwrap();
    let jhu = Source::JHU.default_location().unwrap();
    github.add_many([
        NewCommit::new(&nyt.repo, &nyt.path, NYT),
        NewCommit::new(&jhu.repo, &jhu.path, JHU),
    ]);
    let notification = next_notification(&mut notifications, &processes, "the run").await;
    assert_eq!(
        notification.status,
        RunStatus::Succeeded,
        "{}",
        notification.text
    );
    // The email went through the TLS session after AUTH with the canary password.
    let emails = test_support::mail::wait_for_mails(&sink.maildir, env, 1, WAIT).await;

    // The dashboard reads what was loaded, as its own role.
    processes.push(Process::spawn_exact(
        "dashboard",
        &service_vars("dashboard", &dashboard_vars, &nats_password),
        logs.path(),
    ));
    eventually("the dashboard to be ready", WAIT, || async move {
        get(dashboard_port, "/readyz")
            .await
            .filter(|(status, _)| *status == 200)
    })
    .await;
    for path in [
        "/api/v1/us/daily",
        "/api/v1/runs",
        "/api/v1/meta",
        "/api/v1/us/changes",
    ] {
        let (status, body) = get(dashboard_port, path)
            .await
            .unwrap_or_else(|| panic!("the dashboard answers {path}"));
        assert_eq!(status, 200, "GET {path}: {body}");
    }
    let (_, daily) = get(dashboard_port, "/api/v1/us/daily").await.unwrap();
    assert!(daily.contains("2020-03-03"), "the loaded rows: {daily}");

    // Exiting flushes each process's last batch of spans.
    for process in processes {
        process.terminate().await;
    }

    // Everything that could show a secret.
    let mut haystack = Haystack::default();
    let mut log_lines = 0;
    let mut lines_per_service = Vec::new();
    let mut targets = std::collections::BTreeMap::new();
    for service in SERVICES {
        let file = logs.path().join(format!("{service}.log"));
        let text = std::fs::read_to_string(&file)
            .unwrap_or_else(|err| panic!("{}: {err}", file.display()));
        let mut lines = 0;
        for (number, line) in text.lines().enumerate() {
            haystack.add(
                format!("{service}.log line {}", number + 1),
                line.as_bytes(),
            );
            lines += 1;
            // Which crate wrote it: the service's own code, or a dependency's trace output.
            if let Some(target) = serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .and_then(|line| Some(line.get("target")?.as_str()?.split("::").next()?.to_owned()))
            {
                *targets.entry(target).or_insert(0usize) += 1;
            }
        }
        assert!(
            text.lines()
                .any(|line| line.contains("\"level\":\"TRACE\"")),
            "{service} logged at trace level, as JSON"
        );
        log_lines += lines;
        lines_per_service.push(format!("{service} {lines}"));
    }
    let bodies = otlp.bodies();
    let otlp_bytes: usize = bodies.iter().map(|body| body.len()).sum();
    for (i, body) in bodies.iter().enumerate() {
        haystack.add(format!("OTLP export request {}", i + 1), body);
    }
    let spans = otlp.spans();
    let notify_messages = raw_messages(&mut notify).await;
    let event_messages = raw_messages(&mut events).await;
    for (i, (subject, payload)) in notify_messages.iter().chain(&event_messages).enumerate() {
        haystack.add(format!("message {} on {subject}", i + 1), payload);
    }
    let mail_files = files_under(&sink.maildir);
    for file in &mail_files {
        let bytes = std::fs::read(file).unwrap();
        haystack.add(format!("email file {}", file.display()), &bytes);
    }
    // Bodies may travel encoded (quoted-printable, base64): search them decoded too.
    for mail in &emails {
        let decoded = format!("{}\n{}\n{}", mail.subject, mail.text, mail.html);
        haystack.add(
            format!("email {} (decoded)", mail.file.display()),
            decoded.as_bytes(),
        );
    }
    let mut check_config_errors = 0;
    for service in SERVICES {
        let chosen = if service == "dashboard" {
            &dashboard_vars
        } else {
            &vars
        };
        let (ok, stdout, stderr) =
            check_config(service, &service_vars(service, chosen, &nats_password));
        assert!(ok, "{service} --check-config: {}", canaries.masked(&stderr));
        assert!(
            stdout.contains("configuration is valid"),
            "{service} --check-config: {}",
            canaries.masked(&stdout)
        );
        haystack.add(
            format!("{service} --check-config stdout"),
            stdout.as_bytes(),
        );
        haystack.add(
            format!("{service} --check-config stderr"),
            stderr.as_bytes(),
        );

        // The same secrets in settings it refuses: the errors name what is wrong, not the value.
        let mut refused = service_vars(service, chosen, &nats_password);
        // A port no URL can have, the password left where it was.
        let with_port = |url: &str| url.replace("@127.0.0.1:", "@127.0.0.1:99999");
        refused.set("NATS_URL", with_port(refused.get("NATS_URL").unwrap()));
        refused.set("POLL_INTERVAL", "soon");
        match service {
            "loader" | "dashboard" => {
                refused.set(
                    "DATABASE_URL",
                    with_port(chosen.get("DATABASE_URL").unwrap()),
                );
            }
            "notifier" => {
                let mut plain = smtp_url.clone();
                plain.set_query(None);
                refused.set("SMTP_URL", plain.as_str());
            }
            _ => {
                refused.set(
                    "GITHUB_API_URL",
                    format!("ftp://x-access-token:{github_token}@api.github.test"),
                );
            }
        }
        let (ok, stdout, stderr) = check_config(service, &refused);
        assert!(
            !ok && stderr.contains("invalid configuration"),
            "{service} --check-config refuses the broken settings: {}",
            canaries.masked(&stderr)
        );
        haystack.add(
            format!("{service} --check-config (refused) stdout"),
            stdout.as_bytes(),
        );
        haystack.add(
            format!("{service} --check-config (refused) stderr"),
            stderr.as_bytes(),
        );
        check_config_errors += stderr.lines().count();
    }

    // The search really had something to search.
    assert!(
        log_lines >= 1000,
        "trace logging wrote only {log_lines} lines ({lines_per_service:?})"
    );
    for dependency in ["async_nats", "tokio_postgres", "rustls", "reqwest"] {
        assert!(
            targets.contains_key(dependency),
            "{dependency}'s trace output is among the lines searched: {targets:?}"
        );
    }
    let services: std::collections::BTreeSet<&str> =
        spans.iter().map(|span| span.service.as_str()).collect();
    assert_eq!(
        services,
        SERVICES.into_iter().collect(),
        "every service exported spans"
    );
    assert!(
        notify_messages.len() >= 2,
        "the run's notification and its email report: {}",
        notify_messages.len()
    );
    assert!(!mail_files.is_empty() && !emails.is_empty());
    eprintln!("secrets: log lines by crate: {targets:?}");
    eprintln!(
        "secrets: {} canaries searched in {} log lines ({}), {} OTLP export requests ({otlp_bytes} bytes, {} spans), {} notify and {} ETL messages, {} email files, {} --check-config runs ({check_config_errors} error lines); {} bytes in all",
        canaries.0.len(),
        log_lines,
        lines_per_service.join(", "),
        bodies.len(),
        spans.len(),
        notify_messages.len(),
        event_messages.len(),
        mail_files.len(),
        2 * SERVICES.len(),
        haystack.bytes(),
    );

    let leaks = haystack.leaks(&canaries);
    assert!(
        leaks.is_empty(),
        "{} secret(s) printed:\n{}",
        leaks.len(),
        leaks.join("\n")
    );
    test.clean_up().await;
}
