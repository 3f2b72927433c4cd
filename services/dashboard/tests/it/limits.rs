//! The dashboard holds against clients that try to take it: slow request heads are cut off, one
//! address cannot hold more than its share of live event streams, slow requests are given up,
//! requests beyond the bound are refused, answers are gzipped (the event stream excepted), and a
//! failing database shows no error text of its own. Against the real dashboard, PostgreSQL and
//! NATS.

use std::io::Read;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::support::{SseReader, TestApp, TestDb, date, days, loaded_event};
use dashboard::config::Limits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A dashboard over 40 days, with `tune` applied to its limits.
async fn seeded_with(tune: impl FnOnce(&mut Limits)) -> (TestDb, TestApp) {
    let db = TestDb::new().await;
    db.create_schema().await;
    db.insert_days(&days("2020-03-01", 40, 30), "run-1").await;
    let mut config = db.config();
    tune(&mut config.limits);
    let app = TestApp::start(config).await;
    (db, app)
}

fn addr(app: &TestApp) -> SocketAddr {
    app.base
        .trim_start_matches("http://")
        .parse()
        .expect("the base is http://ip:port")
}

/// Reads until the server closes the connection (or resets it); what it sent, and when.
async fn read_until_closed(stream: &mut tokio::net::tcp::OwnedReadHalf) -> (Vec<u8>, Instant) {
    let mut received = Vec::new();
    let mut buf = [0u8; 1024];
    let read = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("the server closes the connection within 10 s");
    (received, Instant::now())
}

#[tokio::test]
async fn a_client_sending_its_request_head_slowly_is_cut_off_after_the_header_timeout() {
    let (_db, app) = seeded_with(|l| l.header_timeout = Duration::from_secs(1)).await;

    // Slowloris: a partial request line, then one byte of a header every 200 ms, for ever.
    let opened = Instant::now();
    let stream = TcpStream::connect(addr(&app)).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    writer
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: d")
        .await
        .unwrap();
    let trickle = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if writer.write_all(b"a").await.is_err() {
                break;
            }
        }
    });
    // A client that says nothing at all is cut off the same way.
    let silent = TcpStream::connect(addr(&app)).await.unwrap();
    let (mut silent_reader, _silent_writer) = silent.into_split();

    // Meanwhile a well-behaved client is served.
    assert_eq!(app.get("/healthz").await.status(), 200);

    let (received, closed) = read_until_closed(&mut reader).await;
    let held = closed - opened;
    assert!(
        (Duration::from_millis(900)..Duration::from_secs(4)).contains(&held),
        "cut off after {held:?}, expected about 1 s"
    );
    assert!(
        !String::from_utf8_lossy(&received).contains("200 OK"),
        "the partial request was not answered: {:?}",
        String::from_utf8_lossy(&received)
    );
    let (_, silent_closed) = read_until_closed(&mut silent_reader).await;
    assert!(silent_closed - opened < Duration::from_secs(4));
    trickle.abort();

    // A request head sent in time is answered, and the connection may stay open for the next.
    let mut stream = TcpStream::connect(addr(&app)).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    app.stop().await;
}

/// Opens the live event stream with `client` and reads its `hello`.
async fn open_stream(app: &TestApp, client: &reqwest::Client) -> SseReader {
    let response = client.get(app.url("/api/v1/events")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let mut events = SseReader::new(response);
    assert_eq!(events.next(Duration::from_secs(5)).await.event, "hello");
    events
}

#[tokio::test]
async fn the_event_stream_beyond_an_addresss_share_is_refused_while_the_others_keep_streaming() {
    let (db, app) = seeded_with(|l| l.max_streams_per_client = 2).await;
    let mut first = open_stream(&app, &app.http).await;
    let mut second = open_stream(&app, &app.http).await;

    let refused = app.get("/api/v1/events").await;
    assert_eq!(refused.status(), 429);
    assert!(
        refused.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = refused.text().await.unwrap();
    assert!(
        text.starts_with("too many live event streams from your address"),
        "{text}"
    );

    // Another address has its own share (the whole of 127.0.0.0/8 is this host's).
    let elsewhere = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    let mut third = open_stream(&app, &elsewhere).await;

    // The streams that were let in still get every event.
    let js = test_support::stores().await.js;
    let loaded = loaded_event(
        &db.env,
        "run-limited",
        date("2020-03-01"),
        date("2020-04-10"),
        1,
    );
    shared::nats::publish_event(
        &js,
        &shared::subjects::loaded(&db.env),
        "run-limited-loaded",
        &loaded,
    )
    .await
    .unwrap();
    for events in [&mut first, &mut second, &mut third] {
        let event = events.next(Duration::from_secs(10)).await;
        assert_eq!(event.event, "loaded");
        assert!(event.data.contains("run-limited"), "{event:?}");
    }
    // Other requests from the capped address are not affected.
    assert_eq!(app.get("/api/v1/meta").await.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn answers_are_gzipped_for_a_client_that_asks_but_the_event_stream_is_not() {
    let (_db, app) = seeded_with(|_| {}).await;
    let plain = app.get("/api/v1/us/daily").await;
    assert_eq!(plain.status(), 200);
    assert!(plain.headers().get("content-encoding").is_none());
    let plain = plain.bytes().await.unwrap();

    let zipped = app
        .http
        .get(app.url("/api/v1/us/daily"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(zipped.status(), 200);
    assert_eq!(zipped.headers()["content-encoding"], "gzip");
    assert!(
        zipped.headers()["vary"]
            .to_str()
            .unwrap()
            .to_lowercase()
            .contains("accept-encoding")
    );
    let zipped = zipped.bytes().await.unwrap();
    assert_eq!(&zipped[..2], &[0x1f, 0x8b], "a gzip body");
    assert!(
        zipped.len() < plain.len() / 2,
        "{} vs {}",
        zipped.len(),
        plain.len()
    );
    let mut unzipped = Vec::new();
    flate2::read::GzDecoder::new(&zipped[..])
        .read_to_end(&mut unzipped)
        .unwrap();
    assert_eq!(unzipped, plain);

    // The event stream is sent as is, so each event reaches the page at once.
    let stream = app
        .http
        .get(app.url("/api/v1/events"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert!(stream.headers().get("content-encoding").is_none());
    let mut events = SseReader::new(stream);
    assert_eq!(events.next(Duration::from_secs(5)).await.event, "hello");
    app.stop().await;
}

/// Holds an exclusive lock on the env's `us_daily` until the returned client is dropped (its
/// transaction rolls back with the connection).
async fn lock_daily(db: &TestDb) -> tokio_postgres::Client {
    let client = test_support::connect().await;
    client
        .batch_execute(&format!(
            "BEGIN; LOCK TABLE {}.us_daily IN ACCESS EXCLUSIVE MODE;",
            db.schema()
        ))
        .await
        .unwrap();
    client
}

/// Waits until a session waits for a lock on the env's `us_daily`.
async fn wait_for_lock_waiter(db: &TestDb) {
    let sql = format!(
        "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = '{}.us_daily'::regclass",
        db.schema()
    );
    let (client, sql) = (&db.client, sql.as_str());
    test_support::eventually(
        "a dashboard query to wait on the lock",
        Duration::from_secs(5),
        || async move {
            let waiting: i64 = client.query_one(sql, &[]).await.ok()?.get(0);
            (waiting > 0).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn a_slow_request_is_given_up_and_requests_beyond_the_bound_are_refused_but_streams_live_on()
{
    let (db, app) = seeded_with(|l| {
        l.request_timeout = Duration::from_secs(2);
        l.max_requests = 1;
    })
    .await;
    let mut events = open_stream(&app, &app.http).await;

    // A query stuck behind a lock holds the one request slot until the time limit.
    let lock = lock_daily(&db).await;
    let started = Instant::now();
    let slow = {
        let (http, url) = (app.http.clone(), app.url("/api/v1/us/daily"));
        tokio::spawn(async move { http.get(url).send().await.unwrap() })
    };
    wait_for_lock_waiter(&db).await;
    let busy = app.get("/healthz").await;
    assert_eq!(busy.status(), 503);
    assert_eq!(
        busy.text().await.unwrap(),
        "the dashboard is busy; try again shortly\n"
    );

    let slow = slow.await.unwrap();
    let took = started.elapsed();
    assert_eq!(slow.status(), 503);
    assert!(
        (Duration::from_millis(1900)..Duration::from_secs(4)).contains(&took),
        "given up after {took:?}, expected about 2 s"
    );
    assert_eq!(
        slow.text().await.unwrap(),
        "the request took too long; try again shortly\n"
    );
    drop(lock);
    // The slot is free again.
    assert_eq!(app.get("/healthz").await.status(), 200);

    // The event stream, open for longer than the time limit, still streams.
    let js = test_support::stores().await.js;
    let loaded = loaded_event(
        &db.env,
        "run-after-timeout",
        date("2020-03-01"),
        date("2020-04-10"),
        1,
    );
    shared::nats::publish_event(
        &js,
        &shared::subjects::loaded(&db.env),
        "run-after-timeout-loaded",
        &loaded,
    )
    .await
    .unwrap();
    let event = events.next(Duration::from_secs(10)).await;
    assert!(event.data.contains("run-after-timeout"), "{event:?}");
    app.stop().await;
}

/// What a body must never hold when the database fails: PostgreSQL's own words, or the names of
/// roles, schemas, tables and columns.
fn assert_no_database_text(body: &str, names: &[&str]) {
    let lower = body.to_lowercase();
    for word in [
        "column",
        "relation",
        "permission",
        "role",
        "does not exist",
        "password",
        "sqlstate",
        "db error",
        "tokio_postgres",
        "us_daily",
        "etl_runs",
    ]
    .iter()
    .chain(names)
    {
        assert!(!lower.contains(word), "`{word}` in the answer: {body}");
    }
}

#[tokio::test]
async fn a_failing_database_is_answered_with_no_text_of_its_own() {
    let (db, app) = seeded_with(|_| {}).await;
    // Columns the queries read are gone: PostgreSQL answers `column "cases" does not exist`.
    db.client
        .batch_execute(&format!(
            "ALTER TABLE {s}.us_daily RENAME COLUMN cases TO cases_gone;
             ALTER TABLE {s}.etl_runs RENAME COLUMN status TO status_gone;",
            s = db.schema()
        ))
        .await
        .unwrap();
    for path in ["/api/v1/us/daily", "/api/v1/runs"] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 500, "{path}");
        assert!(
            response.headers().contains_key("x-request-id"),
            "{path}: the id to find the error in the log"
        );
        let body = response.text().await.unwrap();
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["error"], "reading the database failed", "{path}");
        assert_no_database_text(&body, &["cases", "status_gone", db.env.as_str()]);
    }
    app.stop().await;

    // A role that does not exist: PostgreSQL's refusal names it; the answers do not.
    let ghost = format!("{}_ghost", db.env);
    let mut url = url::Url::parse(&test_support::stack::database_url()).unwrap();
    url.set_username(&ghost).unwrap();
    url.set_password(None).unwrap();
    let app = TestApp::start_unchecked(crate::support::config_for(&db.env, url.as_str())).await;
    for path in ["/readyz", "/api/v1/us/daily"] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 503, "{path}");
        let body = response.text().await.unwrap();
        assert_no_database_text(&body, &[&ghost]);
    }
    app.stop().await;
}
