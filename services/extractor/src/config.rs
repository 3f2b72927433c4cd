//! The extractor's settings, read once at start from environment variables.

use std::time::Duration;

use chrono::NaiveTime;
use shared::config::{ConfigError, NatsConfig, Parser, Secret, Spec, Var, Vars};
use shared::source::UpstreamLocation;
use shared::{Env, Source, store};
use url::Url;

use crate::download::{CUT_OFF_RETRY, Retry};

/// Where one source's file lives upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceSettings {
    pub source: Source,
    pub location: UpstreamLocation,
}

impl SourceSettings {
    /// `(owner, repo)` of the location; validated at parse time.
    pub fn owner_repo(&self) -> (&str, &str) {
        self.location
            .repo
            .split_once('/')
            .expect("repo was validated as owner/name")
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub nats: NatsConfig,
    /// `METRICS_ADDR`: where `/metrics`, `/livez` and `/readyz` are served.
    pub metrics_addr: std::net::SocketAddr,
    pub env: Env,
    /// REST base (`https://api.github.com`, `https://host/api/v3`, or a test fake).
    pub api_url: Url,
    /// Raw content host: `{raw}/{owner}/{repo}/{sha}/{path}`.
    pub raw_url: Url,
    /// Sent as `Authorization: Bearer` to the API host only.
    pub token: Option<Secret>,
    pub poll_interval: Duration,
    /// Replicas of the extractor of one env share a lease (`<env>.extractor.lease`): its holder
    /// polls, the others stand by and take over within this period when it dies.
    pub lease_period: Duration,
    /// The daily run, UTC.
    pub daily_run_at: NaiveTime,
    pub max_payload_bytes: u64,
    /// Bound on every HTTP request, body included.
    pub request_timeout: Duration,
    /// Commits asked for per page; paging follows `Link` when more landed between polls.
    pub per_page: u32,
    /// Ceiling of the backoff after server errors and timeouts, which starts at the poll interval
    /// and doubles per failed poll (with jitter): trouble never makes polls more frequent.
    pub retry_max: Duration,
    /// Wait after a secondary rate limit that names no time (GitHub asks for at least a minute).
    pub secondary_limit_wait: Duration,
    /// Wait after a 403 that is not a rate limit: a permission problem needs a person.
    pub permission_backoff: Duration,
    /// How a download cut off by the connection is tried again before it is reported.
    pub download_retry: Retry,
    pub sources: Vec<SourceSettings>,
}

impl Config {
    pub fn from_vars(vars: &Vars) -> Result<Config, ConfigError> {
        let mut p = Parser::new(vars);
        let nats = NatsConfig::parse(&mut p);
        let metrics_addr = shared::metrics::addr::metrics_addr(&mut p, "extractor");
        let env = p.env();
        let api_url = p.url(
            "GITHUB_API_URL",
            "https://api.github.com",
            &["https", "http"],
        );
        let raw_url = p.url(
            "GITHUB_RAW_URL",
            "https://raw.githubusercontent.com",
            &["https", "http"],
        );
        let token = p.secret("GITHUB_TOKEN");
        let poll_interval = p.duration("POLL_INTERVAL", "60s");
        let lease_period = p.duration("LEASE_PERIOD", "20s");
        // Checked every eighth of it: shorter would keep the bucket busy for nothing.
        if lease_period < std::time::Duration::from_secs(1) {
            p.error("LEASE_PERIOD", "must be at least 1s");
        }
        let daily_run_at = parse_daily(&mut p);
        let max_payload_bytes = parse_size(
            &mut p,
            "MAX_PAYLOAD_BYTES",
            store::DEFAULT_MAX_PAYLOAD_BYTES,
        );
        let request_timeout = p.duration("REQUEST_TIMEOUT", "30s");
        let per_page: u32 = p.parse("GITHUB_PER_PAGE", 30);
        if !(1..=100).contains(&per_page) {
            p.error(
                "GITHUB_PER_PAGE",
                format!("{per_page} is outside 1..=100, the range GitHub accepts"),
            );
        }
        let sources = Source::ALL
            .into_iter()
            .map(|source| parse_source(&mut p, source))
            .collect();
        p.finish()?;
        Ok(Config {
            metrics_addr,
            nats,
            env,
            api_url,
            raw_url,
            token,
            poll_interval,
            lease_period,
            daily_run_at,
            max_payload_bytes,
            request_timeout,
            per_page: per_page.clamp(1, 100),
            retry_max: Duration::from_secs(10 * 60),
            secondary_limit_wait: Duration::from_secs(60),
            permission_backoff: Duration::from_secs(30 * 60),
            download_retry: CUT_OFF_RETRY,
            sources,
        })
    }

    pub fn source(&self, source: Source) -> Option<&SourceSettings> {
        self.sources.iter().find(|s| s.source == source)
    }
}

/// The extractor's command line and every variable it reads, for `--help` and
/// `--check-config` (a unit test keeps it in step with [`Config::from_vars`]).
pub fn spec() -> Spec {
    let mut vars = shared::config::nats_vars();
    vars.extend([
        shared::config::metrics_var(env!("CARGO_PKG_NAME")),
        shared::config::env_var(),
        Var::new(
            "GITHUB_API_URL",
            "GitHub's REST API (https://host/api/v3 for GitHub Enterprise)",
        )
        .default_value("https://api.github.com")
        .url(),
        Var::new(
            "GITHUB_RAW_URL",
            "Where raw files are downloaded from: {raw}/{owner}/{repo}/{sha}/{path}",
        )
        .default_value("https://raw.githubusercontent.com")
        .url(),
        Var::new(
            "GITHUB_TOKEN",
            "A GitHub token, sent to the API host only (5000 requests an hour instead of 60)",
        )
        .secret(),
        Var::new("POLL_INTERVAL", "How often GitHub is asked for new commits").default_value("60s"),
        Var::new(
            "LEASE_PERIOD",
            "Of several extractors of one env, one polls at a time; one that dies is replaced \
             within this period",
        )
        .default_value("20s"),
        Var::new(
            "DAILY_RUN_AT",
            "Time of the daily run, UTC (HH:MM or HH:MM:SS)",
        )
        .default_value("06:00"),
        Var::new(
            "MAX_PAYLOAD_BYTES",
            "The largest upstream file downloaded (such as 67108864, 64MiB or 500KB)",
        )
        .default_value("256MiB"),
        Var::new(
            "REQUEST_TIMEOUT",
            "Bound on every HTTP request, body included",
        )
        .default_value("30s"),
        Var::new("GITHUB_PER_PAGE", "Commits asked for per page (1 to 100)").default_value(30),
    ]);
    for source in Source::ALL {
        let prefix = source.as_str().to_uppercase();
        let home = source.default_location();
        vars.extend([
            Var::new(
                format!("{prefix}_REPO"),
                format!("The {} repository, owner/name", source.as_str()),
            )
            .default_value(home.repo),
            Var::new(
                format!("{prefix}_BRANCH"),
                format!("The branch of {prefix}_REPO that is followed"),
            )
            .default_value(home.branch),
            Var::new(
                format!("{prefix}_PATH"),
                format!("The file inside {prefix}_REPO"),
            )
            .default_value(home.path),
        ]);
    }
    Spec::new(
        env!("CARGO_PKG_NAME"),
        env!("CARGO_PKG_VERSION"),
        "Polls GitHub for new commits of the upstream COVID-19 datasets, downloads each changed \
         file into the NATS object store and announces it on etl.<env>.extracted",
        vars,
    )
}

/// `NYT_REPO`, `NYT_BRANCH`, `NYT_PATH` (and `JHU_…`), defaulting to the source's usual home.
fn parse_source(p: &mut Parser<'_>, source: Source) -> SourceSettings {
    let default = source.default_location();
    let prefix = source.as_str().to_uppercase();
    let repo_var = format!("{prefix}_REPO");
    let repo = p.string(&repo_var, &default.repo);
    let valid_repo = repo.split_once('/').is_some_and(|(owner, name)| {
        [owner, name].iter().all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        })
    });
    if !valid_repo {
        p.error(
            &repo_var,
            format!("`{repo}` is not a GitHub repository in the form owner/name"),
        );
    }
    let branch = p.string(&format!("{prefix}_BRANCH"), &default.branch);
    let path_var = format!("{prefix}_PATH");
    let path = p.string(&path_var, &default.path);
    if path.starts_with('/')
        || path.ends_with('/')
        || path.split('/').any(|seg| seg.is_empty() || seg == "..")
    {
        p.error(
            &path_var,
            format!("`{path}` is not a file path inside the repository (like data/file.csv)"),
        );
    }
    let location = if valid_repo {
        UpstreamLocation { repo, branch, path }
    } else {
        default
    };
    SourceSettings { source, location }
}

/// `DAILY_RUN_AT`: `HH:MM` or `HH:MM:SS`, UTC.
fn parse_daily(p: &mut Parser<'_>) -> NaiveTime {
    let default = NaiveTime::from_hms_opt(6, 0, 0).expect("valid time");
    let Some(raw) = p.optional_string("DAILY_RUN_AT") else {
        return default;
    };
    match NaiveTime::parse_from_str(&raw, "%H:%M:%S")
        .or_else(|_| NaiveTime::parse_from_str(&raw, "%H:%M"))
    {
        Ok(time) => time,
        Err(_) => {
            p.error(
                "DAILY_RUN_AT",
                format!("`{raw}` is not a UTC time of day such as 06:00"),
            );
            default
        }
    }
}

/// A byte count: plain (`1048576`) or with a unit (`64MiB`, `500KB`, `2GiB`).
fn parse_size(p: &mut Parser<'_>, name: &str, default: u64) -> u64 {
    let Some(raw) = p.optional_string(name) else {
        return default;
    };
    match size_in_bytes(&raw) {
        Some(0) => {
            p.error(name, "must be greater than zero");
            default
        }
        Some(bytes) => bytes,
        None => {
            p.error(
                name,
                format!("`{raw}` is not a size such as 67108864, 64MiB or 500KB"),
            );
            default
        }
    }
}

fn size_in_bytes(raw: &str) -> Option<u64> {
    let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (digits, unit) = raw.split_at(split);
    let number: u64 = digits.parse().ok()?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "kib" => 1 << 10,
        "mb" => 1_000_000,
        "mib" => 1 << 20,
        "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        _ => return None,
    };
    number.checked_mul(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_contract() {
        let config = Config::from_vars(&Vars::default()).unwrap();
        assert_eq!(config.api_url.as_str(), "https://api.github.com/");
        assert_eq!(
            config.raw_url.as_str(),
            "https://raw.githubusercontent.com/"
        );
        assert_eq!(config.poll_interval, Duration::from_secs(60));
        assert_eq!(
            config.daily_run_at,
            NaiveTime::from_hms_opt(6, 0, 0).unwrap()
        );
        assert_eq!(config.max_payload_bytes, store::DEFAULT_MAX_PAYLOAD_BYTES);
        assert_eq!(config.env, Env::prod());
        assert!(config.token.is_none());
        assert_eq!(
            config.source(Source::Nyt).unwrap().location,
            Source::Nyt.default_location()
        );
        assert_eq!(
            config.source(Source::Jhu).unwrap().owner_repo(),
            ("datasets", "covid-19")
        );
    }

    #[test]
    fn per_source_overrides_apply() {
        let vars = Vars::from_pairs([
            ("NYT_REPO", "me/fork"),
            ("NYT_BRANCH", "dev"),
            ("JHU_PATH", "x/y.csv"),
        ]);
        let config = Config::from_vars(&vars).unwrap();
        let nyt = &config.source(Source::Nyt).unwrap().location;
        assert_eq!(
            (nyt.repo.as_str(), nyt.branch.as_str(), nyt.path.as_str()),
            ("me/fork", "dev", "us.csv")
        );
        assert_eq!(config.source(Source::Jhu).unwrap().location.path, "x/y.csv");
    }

    #[test]
    fn every_bad_value_gets_its_own_line() {
        let vars = Vars::from_pairs([
            ("DAILY_RUN_AT", "6am"),
            ("MAX_PAYLOAD_BYTES", "lots"),
            ("NYT_REPO", "no-slash"),
            ("JHU_PATH", "/abs.csv"),
            ("GITHUB_PER_PAGE", "500"),
            ("GITHUB_API_URL", "ftp://x"),
        ]);
        let err = Config::from_vars(&vars).unwrap_err();
        assert_eq!(err.lines.len(), 6, "{err}");
        assert!(
            err.lines
                .iter()
                .any(|l| l.starts_with("DAILY_RUN_AT: `6am`"))
        );
        assert!(
            err.lines
                .iter()
                .any(|l| l.starts_with("NYT_REPO: `no-slash`"))
        );
    }

    #[test]
    fn daily_time_takes_seconds_and_sizes_take_units() {
        let vars = Vars::from_pairs([("DAILY_RUN_AT", "13:45:10"), ("MAX_PAYLOAD_BYTES", "2MiB")]);
        let config = Config::from_vars(&vars).unwrap();
        assert_eq!(
            config.daily_run_at,
            NaiveTime::from_hms_opt(13, 45, 10).unwrap()
        );
        assert_eq!(config.max_payload_bytes, 2 * 1024 * 1024);
        assert_eq!(size_in_bytes("500KB"), Some(500_000));
        assert_eq!(size_in_bytes("12"), Some(12));
        assert_eq!(size_in_bytes("1.5MB"), None);
    }

    #[test]
    fn help_lists_exactly_what_the_parser_reads_with_its_defaults() {
        shared::config::check_table(
            &spec(),
            Config::from_vars,
            |config| format!("{config:?}"),
            &[&[("NATS_USER", "u")]],
        )
        .unwrap_or_else(|problems| panic!("{}", problems.join("\n")));
    }

    #[test]
    fn the_token_never_prints() {
        let vars = Vars::from_pairs([("GITHUB_TOKEN", "ghp_secret")]);
        let config = Config::from_vars(&vars).unwrap();
        assert!(!format!("{config:?}").contains("ghp_secret"));
    }
}
