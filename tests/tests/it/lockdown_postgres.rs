//! PostgreSQL locked down (`scripts/stack.sh`): over TCP only TLS with a SCRAM password, as one of
//! two roles, each allowed only what it needs. Every rule is tried here against the stack's real
//! server, the way an attacker holding one service's credentials would:
//!
//! - `covid_reader` (the dashboard) reads an env's tables and can change or create nothing;
//! - `covid_loader` (the loader, `etl`, the tests' own set-up) owns the env schemas it makes but
//!   is no superuser: no program run on the database host, no server file read, no role made;
//! - a connection without TLS, or as the superuser, is refused;
//! - `verify-full` with the stack's CA connects, and with another CA or another host name fails
//!   with an error that says why; `verify-ca` and `require` keep libpq's meanings.
//!
//! The roles' URLs are the stack's: `DATABASE_URL` of the process (`$STACK_DIR/env`, the loader's
//! role) and `DATABASE_URL` of `$STACK_DIR/env.dashboard` (the reader's).

use std::path::{Path, PathBuf};

use shared::config::Vars;
use shared::postgres::Database;
use test_support::stack::{self, Identity};
use test_support::unique_env;
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

/// The loader's URL, checked to be a locked-down stack's.
fn loader_url() -> String {
    let url = stack::database_url();
    assert!(
        url.contains("covid_loader:"),
        "DATABASE_URL is not the stack's covid_loader (run scripts/stack.sh up and load $STACK_DIR/env)"
    );
    url
}

/// The reader's URL: the dashboard's file, else `DASHBOARD_DATABASE_URL` of the process.
fn reader_url() -> String {
    let from_file = stack::identity_file(Identity::Dashboard)
        .and_then(|vars| vars.into_iter().find(|(name, _)| name == "DATABASE_URL"))
        .map(|(_, url)| url);
    let url = from_file
        .or_else(|| std::env::var("DASHBOARD_DATABASE_URL").ok())
        .unwrap_or_default();
    assert!(
        url.contains("covid_reader:"),
        "no covid_reader URL in $STACK_DIR/env.dashboard (run scripts/stack.sh up)"
    );
    url
}

/// The stack's CA.
fn stack_ca() -> PathBuf {
    stack::stack_dir().join("pki/ca.pem")
}

/// `url` without its query, with `params` as its query.
fn with_params(url: &str, params: &str) -> String {
    let base = url.split_once('?').map_or(url, |(base, _)| base);
    format!("{base}?{params}")
}

/// A connection to `url`, the process's `PGSSLMODE` / `PGSSLROOTCERT` ignored: each test says
/// exactly what it asks for.
async fn connect(url: &str) -> Result<Client, String> {
    let database = Database::parse(url, &Vars::default()).map_err(|err| err.to_string())?;
    database
        .connect()
        .await
        .map_err(|err| shared::postgres::explain(&err))
}

/// Why a connection to `url` failed; `expectation` names what should have refused it.
async fn refused_connection(url: &str, expectation: &str) -> String {
    match connect(url).await {
        Ok(_) => panic!("{expectation}, but the connection succeeded"),
        Err(err) => err,
    }
}

async fn connected(url: &str) -> Client {
    connect(url)
        .await
        .unwrap_or_else(|err| panic!("connecting: {err}"))
}

/// Whether this session is encrypted, by the server's own account.
async fn encrypted(client: &Client) -> bool {
    client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

/// Runs `sql`, which must be refused for lack of privilege.
async fn refused(client: &Client, sql: &str) {
    let Err(err) = client.batch_execute(sql).await else {
        panic!("must be refused: {sql}");
    };
    assert_eq!(
        err.code(),
        Some(&SqlState::INSUFFICIENT_PRIVILEGE),
        "{sql}: {}",
        shared::postgres::explain(&err)
    );
}

#[tokio::test]
async fn the_reader_reads_an_env_and_can_change_or_create_nothing() {
    let env = unique_env("pgread");
    let loader = test_support::migrate(&env).await;
    let s = format!("\"{env}\"");
    loader
        .batch_execute(&format!(
            "INSERT INTO {s}.us_daily (date, cases, deaths, run_id) VALUES ('2020-03-01', 5, 1, 'r1')"
        ))
        .await
        .unwrap();

    let reader = connected(&reader_url()).await;
    let who: String = reader
        .query_one("SELECT session_user::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(who, "covid_reader");
    let days: i64 = reader
        .query_one(&format!("SELECT count(*) FROM {s}.us_daily"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(days, 1, "the migrations grant the reader SELECT");

    for sql in [
        format!(
            "INSERT INTO {s}.us_daily (date, cases, deaths, run_id) VALUES ('2020-03-02', 6, 1, 'r2')"
        ),
        format!("UPDATE {s}.us_daily SET cases = 0"),
        format!("DELETE FROM {s}.us_daily"),
        format!("TRUNCATE {s}.us_daily"),
        format!("INSERT INTO {s}.etl_runs (run_id, status) VALUES ('forged', 'succeeded')"),
        format!("DROP TABLE {s}.us_daily"),
        format!("ALTER TABLE {s}.us_daily ADD COLUMN forged int"),
        format!("CREATE TABLE {s}.forged (x int)"),
        format!("CREATE VIEW {s}.forged AS SELECT 1"),
        "CREATE TABLE public.forged (x int)".to_owned(),
        "CREATE SCHEMA forged".to_owned(),
        "CREATE TEMPORARY TABLE forged (x int)".to_owned(),
        "CREATE ROLE forged".to_owned(),
        "CREATE DATABASE forged".to_owned(),
    ] {
        refused(&reader, &sql).await;
    }
    drop(reader);
    test_support::drop_schema(&env).await;
}

#[tokio::test]
async fn the_loader_owns_its_schemas_but_is_no_superuser() {
    let env = unique_env("pgload");
    let loader = test_support::migrate(&env).await;
    let row = loader
        .query_one(
            "SELECT rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls,
                    pg_has_role('pg_execute_server_program', 'MEMBER'),
                    pg_has_role('pg_read_server_files', 'MEMBER'),
                    pg_has_role('pg_write_server_files', 'MEMBER'),
                    (SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = $1)
             FROM pg_roles WHERE rolname = current_user",
            &[&env.as_str()],
        )
        .await
        .unwrap();
    for (i, what) in [
        "superuser",
        "CREATEROLE",
        "CREATEDB",
        "REPLICATION",
        "BYPASSRLS",
        "pg_execute_server_program",
        "pg_read_server_files",
        "pg_write_server_files",
    ]
    .iter()
    .enumerate()
    {
        assert!(!row.get::<_, bool>(i), "the loader has {what}");
    }
    assert_eq!(row.get::<_, String>(8), "covid_loader", "owner of {env}");

    let s = format!("\"{env}\"");
    for sql in [
        // Running a program on the database host.
        "COPY (SELECT 1) TO PROGRAM 'id'".to_owned(),
        format!("COPY {s}.us_daily FROM PROGRAM 'id'"),
        // Reading and writing the server's files.
        "SELECT pg_read_file('/etc/passwd')".to_owned(),
        "SELECT pg_read_binary_file('/etc/passwd')".to_owned(),
        "SELECT pg_ls_dir('/')".to_owned(),
        format!("COPY {s}.us_daily FROM '/etc/passwd'"),
        format!("COPY {s}.us_daily TO '/tmp/covid-etl-forged'"),
        "SELECT lo_import('/etc/passwd')".to_owned(),
        // Making roles, or becoming more.
        "CREATE ROLE forged LOGIN SUPERUSER".to_owned(),
        "CREATE ROLE forged".to_owned(),
        "ALTER ROLE covid_loader SUPERUSER".to_owned(),
        "ALTER ROLE covid_loader CREATEROLE".to_owned(),
        "GRANT pg_execute_server_program TO covid_loader".to_owned(),
        "ALTER ROLE covid_reader PASSWORD 'forged'".to_owned(),
        "SET ROLE postgres".to_owned(),
        "CREATE DATABASE forged".to_owned(),
        "ALTER SYSTEM SET ssl = off".to_owned(),
    ] {
        refused(&loader, &sql).await;
    }
    drop(loader);
    test_support::drop_schema(&env).await;
}

#[tokio::test]
async fn a_connection_without_tls_is_refused() {
    for url in [loader_url(), reader_url()] {
        let plain = with_params(&url, "sslmode=disable");
        let err = refused_connection(&plain, "a connection without TLS is refused").await;
        assert!(
            err.contains("pg_hba.conf rejects connection") && err.contains("no encryption"),
            "{err}"
        );
        let (userinfo, _) = url.split_once('@').unwrap();
        let (_, password) = userinfo.rsplit_once(':').unwrap();
        assert!(!err.contains(password), "the password in an error: {err}");
    }
}

#[tokio::test]
async fn the_superuser_cannot_connect_over_tcp_even_with_tls() {
    let url = loader_url();
    let (_, rest) = url.split_once('@').unwrap();
    let ca = stack_ca();
    let err = refused_connection(
        &with_params(
            &format!("postgres://postgres@{rest}"),
            &format!("sslmode=verify-full&sslrootcert={}", ca.display()),
        ),
        "postgres over TCP is refused",
    )
    .await;
    assert!(
        err.contains("pg_hba.conf rejects connection") && err.contains("\"postgres\""),
        "{err}"
    );
}

#[tokio::test]
async fn a_wrong_password_is_refused() {
    let url = loader_url();
    let (userinfo, rest) = url.split_once('@').unwrap();
    let (user, _) = userinfo.rsplit_once(':').unwrap();
    let err = refused_connection(
        &format!("{user}:not-the-password@{rest}"),
        "a wrong password is refused",
    )
    .await;
    assert!(err.contains("password authentication failed"), "{err}");
    assert!(!err.contains("not-the-password"), "{err}");
}

#[tokio::test]
async fn verify_full_with_the_stack_ca_connects_encrypted_and_channel_bound() {
    let ca = stack_ca();
    for url in [loader_url(), reader_url()] {
        let client = connected(&with_params(
            &url,
            &format!(
                "sslmode=verify-full&sslrootcert={}&channel_binding=require",
                ca.display()
            ),
        ))
        .await;
        assert!(encrypted(&client).await);
    }
    // The certificate also names `localhost`.
    let url = loader_url().replacen("@127.0.0.1:", "@localhost:", 1);
    let client = connected(&with_params(
        &url,
        &format!("sslmode=verify-full&sslrootcert={}", ca.display()),
    ))
    .await;
    assert!(encrypted(&client).await);
}

#[tokio::test]
async fn verify_full_with_another_ca_fails_saying_so() {
    let dir = tempfile::tempdir().unwrap();
    let other_ca = make_ca(dir.path());
    let err = refused_connection(
        &with_params(
            &loader_url(),
            &format!("sslmode=verify-full&sslrootcert={}", other_ca.display()),
        ),
        "a server certificate from another CA is refused",
    )
    .await;
    assert!(
        err.contains("TLS handshake") && err.contains("UnknownIssuer"),
        "{err}"
    );

    // The system's CAs never signed the stack's certificate either.
    let err = refused_connection(
        &with_params(&loader_url(), "sslmode=verify-full"),
        "the stack's certificate is not trusted by the system's CAs",
    )
    .await;
    assert!(err.contains("UnknownIssuer"), "{err}");
}

#[tokio::test]
async fn verify_full_with_another_host_name_fails_saying_so_and_verify_ca_does_not_check_it() {
    let ca = stack_ca();
    // Connect to the stack's address, but as if it were `db.example.invalid`.
    let url = loader_url().replacen("@127.0.0.1:", "@db.example.invalid:", 1);
    let err = refused_connection(
        &with_params(
            &url,
            &format!(
                "hostaddr=127.0.0.1&sslmode=verify-full&sslrootcert={}",
                ca.display()
            ),
        ),
        "a certificate for another host is refused",
    )
    .await;
    assert!(
        err.contains("TLS handshake")
            && err.contains("not valid for name")
            && err.contains("db.example.invalid"),
        "{err}"
    );

    // verify-ca checks the chain only (libpq's meaning).
    let client = connected(&with_params(
        &url,
        &format!(
            "hostaddr=127.0.0.1&sslmode=verify-ca&sslrootcert={}",
            ca.display()
        ),
    ))
    .await;
    assert!(encrypted(&client).await);

    // verify-ca with another CA still fails: the chain is what it checks.
    let dir = tempfile::tempdir().unwrap();
    let other_ca = make_ca(dir.path());
    let err = refused_connection(
        &with_params(
            &url,
            &format!(
                "hostaddr=127.0.0.1&sslmode=verify-ca&sslrootcert={}",
                other_ca.display()
            ),
        ),
        "verify-ca refuses another CA",
    )
    .await;
    assert!(err.contains("UnknownIssuer"), "{err}");
}

#[tokio::test]
async fn require_encrypts_without_checking_the_certificate() {
    let url = loader_url().replacen("@127.0.0.1:", "@db.example.invalid:", 1);
    let client = connected(&with_params(&url, "hostaddr=127.0.0.1&sslmode=require")).await;
    assert!(encrypted(&client).await);
    // With a CA given, libpq (and we) check the chain even under `require`.
    let dir = tempfile::tempdir().unwrap();
    let other_ca = make_ca(dir.path());
    let err = refused_connection(
        &with_params(
            &url,
            &format!(
                "hostaddr=127.0.0.1&sslmode=require&sslrootcert={}",
                other_ca.display()
            ),
        ),
        "require with a CA checks the chain",
    )
    .await;
    assert!(err.contains("UnknownIssuer"), "{err}");
}

/// A CA of its own in `dir` (with openssl, as scripts/pki.sh makes the stack's): its certificate.
fn make_ca(dir: &Path) -> PathBuf {
    let cert = dir.join("other-ca.pem");
    let status = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .arg("ec_paramgen_curve:P-256")
        .args(["-nodes", "-days", "1", "-subj", "/CN=another CA"])
        .arg("-keyout")
        .arg(dir.join("other-ca.key"))
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl runs");
    assert!(status.success(), "openssl made a CA");
    cert
}
