//! NATS locked down (`scripts/nats-auth.sh`): a client must speak TLS and present an NKEY the
//! server knows, and each identity may do only what its role needs. Every rule is tried here
//! against the real server: for each identity a publish, a subscribe and a JetStream operation
//! outside its role, each refused with the server's permissions error, and the operations of its
//! role, each answered. The rest of the suite runs the pipeline with every service as itself.
//!
//! A permitted publish carries `Nats-Expected-Stream` naming no stream: JetStream receives it
//! and answers that the stream does not match, so the publish is proven to pass and nothing is
//! stored for the stages to consume.

use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull};
use async_nats::{Client, ConnectErrorKind, HeaderMap};
use futures::StreamExt;
use shared::Env;
use shared::config::{NatsAuth, NatsConfig};
use shared::nats::{CURATED_BUCKET, ETL_STREAM, RAW_BUCKET, STATE_BUCKET};
use test_support::stack::{self, Identity};
use test_support::unique_env;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

/// How long an expected answer may take: generous, since the whole suite runs beside these tests
/// (the cluster test alone starts eleven processes) on as few as two cores. Only a failing check
/// waits this long.
const WAIT: Duration = Duration::from_secs(20);

/// A connection as one identity, with the errors the server sends it.
struct Probe {
    identity: Identity,
    client: Client,
    js: jetstream::Context,
    errors: mpsc::UnboundedReceiver<String>,
}

impl Probe {
    async fn connect(identity: Identity) -> Probe {
        let config = stack::nats_config(identity);
        assert!(
            matches!(config.auth, NatsAuth::Nkey(_)) && config.tls.required,
            "{} has no NKEY or no TLS: run scripts/stack.sh up (it writes $STACK_DIR/env.<identity>)",
            identity.name()
        );
        let (sender, errors) = mpsc::unbounded_channel();
        let client = shared::nats::options(&config, identity.name())
            .await
            .expect("the identity's options are valid")
            .event_callback(move |event| {
                let sender = sender.clone();
                async move {
                    if let async_nats::Event::ServerError(err) = event {
                        let _ = sender.send(err.to_string());
                    }
                }
            })
            .connect(config.url.as_str())
            .await
            .unwrap_or_else(|err| panic!("{} connects: {err}", identity.name()));
        let js = jetstream::ContextBuilder::new()
            .timeout(Duration::from_secs(2))
            .build(client.clone());
        Probe {
            identity,
            client,
            js,
            errors,
        }
    }

    /// Waits for the server's permissions error about `action` ("Publish", "Subscription") to
    /// `subject`.
    async fn refused(&mut self, action: &str, subject: &str) {
        let expected = format!("Permissions Violation for {action} to \"{subject}\"");
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut seen = Vec::new();
        loop {
            match tokio::time::timeout_at(deadline, self.errors.recv()).await {
                Ok(Some(error)) if error.contains(&expected) => return,
                Ok(Some(error)) => seen.push(error),
                _ => panic!(
                    "{}: the server did not refuse {action} to {subject} (errors seen: {seen:?})",
                    self.identity.name()
                ),
            }
        }
    }

    async fn publish_is_refused(&mut self, subject: &str) {
        self.client
            .publish(subject.to_owned(), "forged".into())
            .await
            .expect("the publish is sent");
        self.client.flush().await.expect("flushed");
        self.refused("Publish", subject).await;
    }

    async fn subscribe_is_refused(&mut self, subject: &str) {
        let _subscriber = self
            .client
            .subscribe(subject.to_owned())
            .await
            .expect("the subscription is sent");
        self.client.flush().await.expect("flushed");
        self.refused("Subscription", subject).await;
    }

    /// A JetStream API request outside the role (`payload` is its body): refused at the
    /// publish, so it never reaches JetStream.
    async fn api_is_refused(&mut self, subject: &str, payload: &str) {
        self.client
            .publish(subject.to_owned(), payload.to_owned().into())
            .await
            .expect("the request is sent");
        self.client.flush().await.expect("flushed");
        self.refused("Publish", subject).await;
    }

    /// A publish the role allows reaches JetStream (see the module's doc).
    async fn publish_is_allowed(&self, subject: &str) {
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Expected-Stream", "LOCKDOWN_NO_SUCH_STREAM");
        let reply = tokio::time::timeout(
            WAIT,
            self.client
                .request_with_headers(subject.to_owned(), headers, "probe".into()),
        )
        .await
        .unwrap_or_else(|_| {
            panic!(
                "{}: no answer to a publish to {subject}",
                self.identity.name()
            )
        })
        .unwrap_or_else(|err| panic!("{}: publish to {subject}: {err}", self.identity.name()));
        let body = String::from_utf8_lossy(&reply.payload);
        assert!(
            body.contains("10060"),
            "{}: JetStream should have refused to store the probe on {subject} (stream mismatch), answered {body}",
            self.identity.name()
        );
    }
}

/// The streams and buckets, declared by the operator as the services declare them (a fresh stack
/// has none yet).
async fn declared() {
    test_support::stores().await;
}

/// A connection as `identity` with `change` applied to its settings; the connect error's kind.
async fn connect_error(
    identity: Identity,
    change: impl FnOnce(&mut NatsConfig),
) -> ConnectErrorKind {
    let mut config = stack::nats_config(identity);
    change(&mut config);
    let options = shared::nats::options(&config, "lockdown-probe")
        .await
        .expect("the options are valid");
    match options.connect(config.url.as_str()).await {
        Ok(_) => panic!("the server let the client in"),
        Err(err) => err.kind(),
    }
}

#[tokio::test]
async fn a_client_without_a_key_is_refused() {
    let kind = connect_error(Identity::Operator, |config| config.auth = NatsAuth::None).await;
    assert_eq!(kind, ConnectErrorKind::AuthorizationViolation);
}

#[tokio::test]
async fn a_client_with_a_key_the_server_does_not_know_is_refused() {
    // The example seed of the NKEY documentation: a valid user key, but no identity's.
    let seed =
        shared::config::Secret::new("SUANQDPB2RUOE4ETUA26CNX7FUKE5ZZKFCQIIW63OX225F2CO7UEXTM7ZY");
    let kind = connect_error(Identity::Operator, |config| {
        config.auth = NatsAuth::Nkey(seed)
    })
    .await;
    assert_eq!(kind, ConnectErrorKind::AuthorizationViolation);
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_stack_ca_cannot_connect() {
    // The platform's roots only: the server's certificate is signed by the stack's own CA.
    let kind = connect_error(Identity::Operator, |config| config.tls.ca_file = None).await;
    assert!(
        matches!(kind, ConnectErrorKind::Tls | ConnectErrorKind::Io),
        "{kind:?}"
    );
}

#[tokio::test]
async fn a_client_speaking_plain_text_is_refused() {
    let config = stack::nats_config(Identity::Operator);
    let url = url::Url::parse(&config.url).expect("NATS_URL is a URL");
    let address = format!(
        "{}:{}",
        url.host_str().expect("a host"),
        url.port().unwrap_or(4222)
    );
    let stream = tokio::net::TcpStream::connect(&address)
        .await
        .expect("NATS listens");
    let mut reader = BufReader::new(stream);
    let mut info = String::new();
    reader
        .read_line(&mut info)
        .await
        .expect("the server greets");
    assert!(info.contains("\"tls_required\":true"), "{info}");

    // The operator's own key would not help: the server wants TLS before anything else.
    reader
        .get_mut()
        .write_all(
            b"CONNECT {\"verbose\":false,\"pedantic\":false,\"tls_required\":false}\r\nPING\r\n",
        )
        .await
        .expect("sent");
    let mut answer = Vec::new();
    let read = tokio::time::timeout(WAIT, reader.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        read.is_ok(),
        "the server kept a plain-text client connected"
    );
    assert!(
        !answer.contains("PONG"),
        "the server answered a plain-text client: {answer}"
    );
}

#[tokio::test]
async fn the_extractor_publishes_extractions_only() {
    let env = unique_env("lock");
    declared().await;
    let mut probe = Probe::connect(Identity::Extractor).await;

    probe
        .publish_is_allowed(&format!("etl.{env}.extracted.nyt"))
        .await;
    probe
        .publish_is_allowed(&format!("etl.{env}.failed.extract"))
        .await;
    let state = probe
        .js
        .get_key_value(STATE_BUCKET)
        .await
        .expect("etl-state opens");
    let key = format!("{env}.nyt.cursor");
    state
        .put(&key, "c1".into())
        .await
        .expect("its own key is written");
    assert_eq!(
        state.get(key).await.expect("its own key is read"),
        Some("c1".into())
    );
    let raw = probe
        .js
        .get_object_store(RAW_BUCKET)
        .await
        .expect("etl-raw opens");
    let name = format!("{env}/nyt/probe");
    raw.put(name.as_str(), &mut "payload".as_bytes())
        .await
        .expect("a raw object is written");
    raw.info(name).await.expect("a raw object is looked up");
    let _trigger = probe
        .client
        .subscribe(format!("etl.{env}.trigger"))
        .await
        .unwrap();

    probe.publish_is_refused(&format!("etl.{env}.loaded")).await;
    probe.publish_is_refused(&format!("notify.{env}")).await;
    probe
        .publish_is_refused(&format!("$KV.{STATE_BUCKET}.{env}.notified.r1"))
        .await;
    probe.subscribe_is_refused(&format!("notify.{env}")).await;
    probe
        .api_is_refused(
            &format!("$JS.API.STREAM.PURGE.{ETL_STREAM}"),
            &format!("{{\"filter\":\"etl.{env}.>\"}}"),
        )
        .await;

    test_support::clean_up(&env).await;
}

#[tokio::test]
async fn the_transformer_consumes_extractions_and_publishes_runs_only() {
    let env = unique_env("lock");
    declared().await;
    let mut probe = Probe::connect(Identity::Transformer).await;

    let stream = probe.js.get_stream(ETL_STREAM).await.expect("ETL opens");
    let consumer = stream
        .create_consumer(pull::Config {
            durable_name: Some(format!("transformer-{env}")),
            filter_subject: format!("etl.{env}.extracted.*"),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .expect("its consumer is declared");
    let mut batch = consumer
        .fetch()
        .max_messages(1)
        .expires(Duration::from_millis(500))
        .messages()
        .await
        .expect("it pulls");
    assert!(
        batch.next().await.is_none(),
        "nothing was published for {env}"
    );
    probe
        .publish_is_allowed(&format!("etl.{env}.transformed"))
        .await;
    probe
        .publish_is_allowed(&format!("etl.{env}.failed.transform"))
        .await;
    let curated = probe
        .js
        .get_object_store(CURATED_BUCKET)
        .await
        .expect("etl-curated opens");
    curated
        .put(
            format!("{env}/probe.parquet").as_str(),
            &mut "rows".as_bytes(),
        )
        .await
        .expect("a curated object is written");

    probe
        .publish_is_refused(&format!("etl.{env}.extracted.nyt"))
        .await;
    probe.publish_is_refused(&format!("etl.{env}.loaded")).await;
    probe
        .publish_is_refused(&format!("$O.{RAW_BUCKET}.M.probe"))
        .await;
    probe
        .subscribe_is_refused(&format!("etl.{env}.trigger"))
        .await;
    probe
        .api_is_refused(
            &format!("$JS.API.CONSUMER.DELETE.{ETL_STREAM}.loader-{env}"),
            "",
        )
        .await;

    test_support::clean_up(&env).await;
}

#[tokio::test]
async fn the_loader_publishes_loads_only() {
    let env = unique_env("lock");
    declared().await;
    let mut probe = Probe::connect(Identity::Loader).await;

    probe.publish_is_allowed(&format!("etl.{env}.loaded")).await;
    probe
        .publish_is_allowed(&format!("etl.{env}.dead.load"))
        .await;
    let curated = probe
        .js
        .get_object_store(CURATED_BUCKET)
        .await
        .expect("etl-curated opens");
    let missing = curated
        .info(format!("{env}/none.parquet"))
        .await
        .expect_err("no such object");
    assert_eq!(
        missing.kind(),
        jetstream::object_store::InfoErrorKind::NotFound,
        "{missing}"
    );

    probe.publish_is_refused(&format!("notify.{env}")).await;
    probe
        .publish_is_refused(&format!("etl.{env}.transformed"))
        .await;
    probe
        .publish_is_refused(&format!("$O.{CURATED_BUCKET}.M.probe"))
        .await;
    probe
        .subscribe_is_refused(&format!("etl.{env}.loaded"))
        .await;
    // Objects are written once and removed by the operator only. (The chunk named is no one's,
    // so a broken rule would remove nothing.)
    probe
        .api_is_refused(
            &format!("$JS.API.STREAM.PURGE.OBJ_{CURATED_BUCKET}"),
            &format!("{{\"filter\":\"$O.{CURATED_BUCKET}.C.lockdown-none\"}}"),
        )
        .await;

    test_support::clean_up(&env).await;
}

#[tokio::test]
async fn the_notifier_publishes_notifications_only() {
    let env = unique_env("lock");
    declared().await;
    let mut probe = Probe::connect(Identity::Notifier).await;

    probe.publish_is_allowed(&format!("notify.{env}")).await;
    probe
        .publish_is_allowed(&format!("etl.{env}.failed.notify"))
        .await;
    let state = probe
        .js
        .get_key_value(STATE_BUCKET)
        .await
        .expect("etl-state opens");
    let key = format!("{env}.notified.r1");
    state
        .put(&key, "sent".into())
        .await
        .expect("its ledger is written");
    assert_eq!(state.get(key).await.expect("read"), Some("sent".into()));

    probe.publish_is_refused(&format!("etl.{env}.loaded")).await;
    probe
        .publish_is_refused(&format!("etl.{env}.trigger"))
        .await;
    probe
        .publish_is_refused(&format!("$KV.{STATE_BUCKET}.{env}.nyt.latest"))
        .await;
    probe.subscribe_is_refused(&format!("etl.{env}.>")).await;
    probe
        .api_is_refused(
            &format!("$JS.API.STREAM.PURGE.KV_{STATE_BUCKET}"),
            &format!("{{\"filter\":\"$KV.{STATE_BUCKET}.{env}.>\"}}"),
        )
        .await;

    test_support::clean_up(&env).await;
}

#[tokio::test]
async fn the_dashboard_only_listens_to_runs() {
    let env = unique_env("lock");
    declared().await;
    let mut probe = Probe::connect(Identity::Dashboard).await;
    let operator = Probe::connect(Identity::Operator).await;

    let mut loaded = probe
        .client
        .subscribe(format!("etl.{env}.loaded"))
        .await
        .unwrap();
    // The refusal is also the round trip that puts the subscription in place before the
    // operator publishes (the server answers after reading the subscription).
    probe.publish_is_refused(&format!("etl.{env}.loaded")).await;
    operator
        .publish_is_allowed(&format!("etl.{env}.loaded"))
        .await;
    let message = tokio::time::timeout(WAIT, loaded.next())
        .await
        .expect("the dashboard hears a run")
        .expect("subscribed");
    assert_eq!(message.subject.as_str(), format!("etl.{env}.loaded"));

    probe.publish_is_refused(&format!("notify.{env}")).await;
    probe.subscribe_is_refused(&format!("notify.{env}")).await;
    probe
        .api_is_refused(&format!("$JS.API.STREAM.INFO.{ETL_STREAM}"), "")
        .await;
}

#[tokio::test]
async fn only_the_operator_triggers_and_purges() {
    let env: Env = unique_env("lock");
    declared().await;
    let operator = Probe::connect(Identity::Operator).await;
    let stream = operator.js.get_stream(ETL_STREAM).await.expect("ETL opens");
    let purged = stream
        .purge()
        .filter(format!("etl.{env}.>"))
        .await
        .expect("the operator purges");
    assert_eq!(purged.purged, 0);
    // No extractor serves this env: the request reaches the server and finds no one.
    let answer = operator
        .client
        .request(format!("etl.{env}.trigger"), "{}".into())
        .await
        .expect_err("no extractor serves the env");
    assert_eq!(
        answer.kind(),
        async_nats::RequestErrorKind::NoResponders,
        "{answer}"
    );

    for identity in [
        Identity::Extractor,
        Identity::Transformer,
        Identity::Loader,
        Identity::Notifier,
        Identity::Dashboard,
    ] {
        let mut probe = Probe::connect(identity).await;
        probe
            .publish_is_refused(&format!("etl.{env}.trigger"))
            .await;
        probe
            .api_is_refused(
                &format!("$JS.API.STREAM.PURGE.{ETL_STREAM}"),
                &format!("{{\"filter\":\"etl.{env}.>\"}}"),
            )
            .await;
    }
}
