//! The transformer's settings: `NATS_*`, `ETL_ENVS` and `MAX_PAYLOAD_BYTES`, plus what tests
//! set in code (the clock, the object-store deadline).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use shared::EnvScope;
use shared::config::{ConfigError, NatsConfig, Parser, Spec, Var, Vars};
use shared::store;

pub use shared::store::DEFAULT_MAX_PAYLOAD_BYTES;

#[derive(Debug, Clone)]
pub struct Config {
    pub nats: NatsConfig,
    /// `METRICS_ADDR`: where `/metrics`, `/livez` and `/readyz` are served.
    pub metrics_addr: std::net::SocketAddr,
    /// The envs whose extracted events this instance handles (`ETL_ENVS`).
    pub scope: EnvScope,
    /// A raw payload larger than this fails the run as `too_large` (`MAX_PAYLOAD_BYTES`).
    pub max_payload_bytes: u64,
    /// The longest one object-store read or write may take ([`store::OBJECT_DEADLINE`]).
    pub store_deadline: Duration,
    /// Where `transformed_at` (curated object metadata, for people) comes from.
    pub clock: Clock,
}

/// The time as the transformer sees it: the system clock, or one a test fixes.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>);

impl Clock {
    pub fn new(now: impl Fn() -> DateTime<Utc> + Send + Sync + 'static) -> Self {
        Self(Arc::new(now))
    }

    pub fn fixed(at: DateTime<Utc>) -> Self {
        Self::new(move || at)
    }

    pub fn now(&self) -> DateTime<Utc> {
        (self.0)()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new(Utc::now)
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Clock({})", self.now().to_rfc3339())
    }
}

/// What a transform may take once its payloads are read: parsing, validating and merging the two
/// files and writing Parquet take well under a second at today's sizes.
const TRANSFORM_BUDGET: Duration = Duration::from_secs(30);

impl Config {
    /// The longest one extracted event may be in hand: two payload reads and the curated write or
    /// the read that checks an existing object (each bounded by `store_deadline`), and the
    /// transform. The store's own deadlines thus fire first and name the object; the stage's
    /// deadline only stops a handler stuck elsewhere.
    pub fn deadline(&self) -> Duration {
        self.store_deadline * 3 + TRANSFORM_BUDGET
    }

    pub fn from_vars(vars: &Vars) -> Result<Config, ConfigError> {
        let mut p = Parser::new(vars);
        let nats = NatsConfig::parse(&mut p);
        let metrics_addr = shared::metrics::addr::metrics_addr(&mut p, "transformer");
        let scope = p.env_scope();
        let max_payload_bytes = p.parse("MAX_PAYLOAD_BYTES", DEFAULT_MAX_PAYLOAD_BYTES);
        if max_payload_bytes == 0 {
            p.error("MAX_PAYLOAD_BYTES", "must be greater than zero");
        }
        p.finish()?;
        Ok(Config {
            metrics_addr,
            nats,
            scope,
            max_payload_bytes,
            store_deadline: store::OBJECT_DEADLINE,
            clock: Clock::default(),
        })
    }
}

/// The transformer's command line and every variable it reads, for `--help` and
/// `--check-config` (a unit test keeps it in step with [`Config::from_vars`]).
pub fn spec() -> Spec {
    let mut vars = shared::config::nats_vars();
    vars.extend([
        shared::config::metrics_var(env!("CARGO_PKG_NAME")),
        shared::config::env_scope_var(),
        Var::new(
            "MAX_PAYLOAD_BYTES",
            "The largest raw payload transformed, in bytes; a larger one fails the run as \
             too_large",
        )
        .default_value(DEFAULT_MAX_PAYLOAD_BYTES),
    ]);
    Spec::new(
        env!("CARGO_PKG_NAME"),
        env!("CARGO_PKG_VERSION"),
        "Turns each extracted upstream file into the curated Parquet dataset in the NATS object \
         store and announces it on etl.<env>.transformed",
        vars,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_serve_every_env_with_a_64_mib_limit() {
        let config = Config::from_vars(&Vars::default()).unwrap();
        assert_eq!(config.scope, EnvScope::All);
        assert_eq!(config.max_payload_bytes, DEFAULT_MAX_PAYLOAD_BYTES);
        assert_eq!(config.nats.url, "nats://127.0.0.1:4222");
        assert_eq!(config.store_deadline, store::OBJECT_DEADLINE);
    }

    #[test]
    fn the_deadline_outlasts_every_store_operation_of_a_run() {
        let config = Config::from_vars(&Vars::default()).unwrap();
        assert_eq!(config.deadline(), Duration::from_secs(120));
    }

    #[test]
    fn a_fixed_clock_always_tells_the_same_time() {
        let at = DateTime::from_timestamp(1_600_000_000, 0).unwrap();
        let clock = Clock::fixed(at);
        assert_eq!(clock.now(), at);
        assert_eq!(clock.clone().now(), at);
    }

    #[test]
    fn each_bad_value_is_one_line() {
        let vars = Vars::from_pairs([("MAX_PAYLOAD_BYTES", "lots"), ("ETL_ENVS", "a,B")]);
        let err = Config::from_vars(&vars).unwrap_err();
        assert_eq!(err.lines.len(), 2, "{err}");
        assert!(
            err.lines
                .iter()
                .any(|l| l.starts_with("MAX_PAYLOAD_BYTES: `lots` is invalid"))
        );
        assert!(err.lines.iter().any(|l| l.starts_with("ETL_ENVS:")));
    }

    #[test]
    fn help_lists_exactly_what_the_parser_reads_with_its_defaults() {
        // The clock tells the time it is: leave it out.
        let at = DateTime::from_timestamp(1_600_000_000, 0).unwrap();
        shared::config::check_table(
            &spec(),
            Config::from_vars,
            |config| {
                let mut config = config.clone();
                config.clock = Clock::fixed(at);
                format!("{config:?}")
            },
            &[&[("NATS_USER", "u")]],
        )
        .unwrap_or_else(|problems| panic!("{}", problems.join("\n")));
    }

    #[test]
    fn a_zero_payload_limit_is_refused() {
        let vars = Vars::from_pairs([("MAX_PAYLOAD_BYTES", "0")]);
        let err = Config::from_vars(&vars).unwrap_err();
        assert_eq!(
            err.lines,
            vec!["MAX_PAYLOAD_BYTES: must be greater than zero".to_owned()]
        );
    }
}
