//! The extractor's settings, read once at start from environment variables.

use std::time::Duration;

use chrono::NaiveTime;
use shared::config::{ConfigError, NatsConfig, Parser, Secret, Spec, Var, Vars};
use shared::source::UpstreamLocation;
use shared::{Dataset, Env, Source, store};
use url::Url;

use crate::download::{CUT_OFF_RETRY, Retry};

/// Where one source's file lives upstream, and the dataset it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceSettings {
    pub dataset: Dataset,
    pub source: Source,
    pub location: UpstreamLocation,
}

/// Where a keyed dataset's files live unless `<DATASET>_REPO`, `_BRANCH` and `_PATHS` say
/// otherwise. A dataset is one or more files of one repository and branch: a commit to any of them
/// makes a run with the latest version of all of them.
struct KeyedHome {
    dataset: Dataset,
    repo: &'static str,
    branch: &'static str,
    paths: &'static str,
}

/// The keyed datasets the extractor knows, at NYT's repository. The county file outgrew one
/// file and was split by year plus the last 30 days (`recent`); its history before the split is
/// one `us-counties.csv` (`COUNTIES_PATHS=us-counties.csv`).
const KEYED_HOMES: [KeyedHome; 2] = [
    KeyedHome {
        dataset: Dataset::STATES,
        repo: "nytimes/covid-19-data",
        branch: "master",
        paths: "us-states.csv",
    },
    KeyedHome {
        dataset: Dataset::COUNTIES,
        repo: "nytimes/covid-19-data",
        branch: "master",
        paths: "us-counties-2020.csv,us-counties-2021.csv,us-counties-2022.csv,\
                us-counties-2023.csv,us-counties-recent.csv",
    },
];

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
    /// `DATASETS`: the datasets polled, in the order given.
    pub datasets: Vec<Dataset>,
    /// Every file polled: the sources of each dataset, in the dataset's order.
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
        let datasets = parse_datasets(&mut p);
        let mut sources = Vec::new();
        for dataset in &datasets {
            if dataset.is_us() {
                sources.extend(
                    Source::US
                        .into_iter()
                        .map(|source| parse_source(&mut p, source)),
                );
            } else if let Some(home) = KEYED_HOMES.iter().find(|h| h.dataset == *dataset) {
                sources.extend(parse_keyed(&mut p, home));
            }
        }
        check_unique(&mut p, &sources);
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
            datasets,
            sources,
        })
    }

    pub fn source(&self, source: &Source) -> Option<&SourceSettings> {
        self.sources.iter().find(|s| s.source == *source)
    }

    /// The sources of `dataset`, in the order its transform reads them.
    pub fn dataset_sources(&self, dataset: &Dataset) -> Vec<Source> {
        self.sources
            .iter()
            .filter(|s| s.dataset == *dataset)
            .map(|s| s.source.clone())
            .collect()
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
    vars.push(
        Var::new(
            "DATASETS",
            "The datasets polled, comma-separated: us (NYT us.csv with JHU), states (NYT \
             us-states.csv), counties (NYT's county files)",
        )
        .default_value(default_datasets()),
    );
    for source in Source::US {
        let prefix = source.as_str().to_uppercase();
        let home = source
            .default_location()
            .expect("the us sources have a default location");
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
    for home in &KEYED_HOMES {
        let prefix = home.dataset.as_str().to_uppercase();
        vars.extend([
            Var::new(
                format!("{prefix}_REPO"),
                format!("The repository of the {} dataset, owner/name", home.dataset),
            )
            .default_value(home.repo),
            Var::new(
                format!("{prefix}_BRANCH"),
                format!("The branch of {prefix}_REPO that is followed"),
            )
            .default_value(home.branch),
            Var::new(
                format!("{prefix}_PATHS"),
                format!(
                    "The files of the {} dataset inside {prefix}_REPO, comma-separated; rows \
                     found in two of them must agree",
                    home.dataset
                ),
            )
            .default_value(home.paths.split_whitespace().collect::<String>()),
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

fn default_datasets() -> String {
    Dataset::ALL.map(|d| d.to_string()).join(",")
}

/// `DATASETS`: known names, each once.
fn parse_datasets(p: &mut Parser<'_>) -> Vec<Dataset> {
    let raw = p.string("DATASETS", &default_datasets());
    let mut datasets: Vec<Dataset> = Vec::new();
    for name in raw.split(',').map(str::trim) {
        match Dataset::ALL.iter().find(|d| d.as_str() == name) {
            Some(d) if datasets.contains(d) => {
                p.error("DATASETS", format!("`{name}` is listed twice"))
            }
            Some(d) => datasets.push(d.clone()),
            None => p.error(
                "DATASETS",
                format!(
                    "`{name}` is not a dataset: expected some of {}",
                    default_datasets()
                ),
            ),
        }
    }
    if datasets.is_empty() {
        p.error("DATASETS", "names no dataset");
    }
    datasets
}

/// `NYT_REPO`, `NYT_BRANCH`, `NYT_PATH` (and `JHU_…`), defaulting to the source's usual home.
fn parse_source(p: &mut Parser<'_>, source: Source) -> SourceSettings {
    let default = source
        .default_location()
        .expect("the us sources have a default location");
    let prefix = source.as_str().to_uppercase();
    let repo = parse_repo(p, &format!("{prefix}_REPO"), &default.repo);
    let branch = p.string(&format!("{prefix}_BRANCH"), &default.branch);
    let path_var = format!("{prefix}_PATH");
    let path = p.string(&path_var, &default.path);
    check_path(p, &path_var, &path);
    SourceSettings {
        dataset: Dataset::US,
        source,
        location: UpstreamLocation { repo, branch, path },
    }
}

/// `<DATASET>_REPO`, `_BRANCH` and `_PATHS`: one source per file, named after it
/// (`us-counties-2021.csv` is source `us-counties-2021`).
fn parse_keyed(p: &mut Parser<'_>, home: &KeyedHome) -> Vec<SourceSettings> {
    let prefix = home.dataset.as_str().to_uppercase();
    let repo = parse_repo(p, &format!("{prefix}_REPO"), home.repo);
    let branch = p.string(&format!("{prefix}_BRANCH"), home.branch);
    let paths_var = format!("{prefix}_PATHS");
    let default_paths: String = home.paths.split_whitespace().collect();
    let paths = p.string(&paths_var, &default_paths);
    let mut sources = Vec::new();
    for path in paths.split(',').map(str::trim) {
        if !check_path(p, &paths_var, path) {
            continue;
        }
        match Source::of_path(path) {
            Ok(source) => sources.push(SourceSettings {
                dataset: home.dataset.clone(),
                source,
                location: UpstreamLocation::new(&repo, &branch, path),
            }),
            Err(err) => p.error(
                &paths_var,
                format!("`{path}`: the file's name makes no source: {err}"),
            ),
        }
    }
    if sources.is_empty() {
        p.error(&paths_var, "names no file");
    }
    sources
}

/// An `owner/name` repository; the default in place of an invalid one (already reported).
fn parse_repo(p: &mut Parser<'_>, var: &str, default: &str) -> String {
    let repo = p.string(var, default);
    let valid_repo = repo.split_once('/').is_some_and(|(owner, name)| {
        [owner, name].iter().all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        })
    });
    if valid_repo {
        repo
    } else {
        p.error(
            var,
            format!("`{repo}` is not a GitHub repository in the form owner/name"),
        );
        default.to_owned()
    }
}

/// Whether `path` is a file path inside a repository; reports it if not.
fn check_path(p: &mut Parser<'_>, var: &str, path: &str) -> bool {
    let valid = !(path.starts_with('/')
        || path.ends_with('/')
        || path.split('/').any(|seg| seg.is_empty() || seg == ".."));
    if !valid {
        p.error(
            var,
            format!("`{path}` is not a file path inside the repository (like data/file.csv)"),
        );
    }
    valid
}

/// Two files of the same name would share their source's subject, keys and objects.
fn check_unique(p: &mut Parser<'_>, sources: &[SourceSettings]) {
    for (i, s) in sources.iter().enumerate() {
        if sources[..i]
            .iter()
            .any(|earlier| earlier.source == s.source)
        {
            p.error(
                "DATASETS",
                format!(
                    "two files are named {} ({}); a source is named after its file, so each must be unique",
                    s.source, s.location.path
                ),
            );
        }
    }
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
            Some(config.source(&Source::NYT).unwrap().location.clone()),
            Source::NYT.default_location()
        );
        assert_eq!(
            config.source(&Source::JHU).unwrap().owner_repo(),
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
        let nyt = &config.source(&Source::NYT).unwrap().location;
        assert_eq!(
            (nyt.repo.as_str(), nyt.branch.as_str(), nyt.path.as_str()),
            ("me/fork", "dev", "us.csv")
        );
        assert_eq!(
            config.source(&Source::JHU).unwrap().location.path,
            "x/y.csv"
        );
    }

    #[test]
    fn every_dataset_is_polled_by_default_each_file_a_source() {
        let config = Config::from_vars(&Vars::default()).unwrap();
        assert_eq!(config.datasets, Dataset::ALL.to_vec());
        let names: Vec<&str> = config.sources.iter().map(|s| s.source.as_str()).collect();
        assert_eq!(
            names,
            [
                "nyt",
                "jhu",
                "us-states",
                "us-counties-2020",
                "us-counties-2021",
                "us-counties-2022",
                "us-counties-2023",
                "us-counties-recent"
            ]
        );
        let counties = config.dataset_sources(&Dataset::COUNTIES);
        assert_eq!(counties.len(), 5);
        let recent = config.source(&counties[4]).unwrap();
        assert_eq!(
            (recent.location.repo.as_str(), recent.location.path.as_str()),
            ("nytimes/covid-19-data", "us-counties-recent.csv")
        );
    }

    #[test]
    fn datasets_and_their_files_are_configurable() {
        let vars = Vars::from_pairs([
            ("DATASETS", "counties"),
            ("COUNTIES_PATHS", "data/us-counties.csv"),
            ("COUNTIES_BRANCH", "main"),
        ]);
        let config = Config::from_vars(&vars).unwrap();
        assert_eq!(config.datasets, vec![Dataset::COUNTIES]);
        assert_eq!(config.sources.len(), 1);
        let only = &config.sources[0];
        assert_eq!(only.source.as_str(), "us-counties");
        assert_eq!(only.location.branch, "main");
        assert_eq!(only.location.path, "data/us-counties.csv");
        assert!(config.source(&Source::NYT).is_none());
    }

    #[test]
    fn unknown_repeated_or_clashing_datasets_are_refused() {
        let refused = |pairs: &[(&str, &str)]| {
            Config::from_vars(&Vars::from_pairs(pairs.iter().copied()))
                .unwrap_err()
                .to_string()
        };
        assert!(refused(&[("DATASETS", "us,world")]).contains("`world` is not a dataset"));
        assert!(refused(&[("DATASETS", "us,us")]).contains("listed twice"));
        assert!(refused(&[("DATASETS", " , ")]).contains("DATASETS: `` is not a dataset"));
        assert!(
            refused(&[("DATASETS", "states"), ("STATES_PATHS", "a.csv,x/a.csv")])
                .contains("each must be unique")
        );
        assert!(
            refused(&[("DATASETS", "states"), ("STATES_PATHS", "a b.csv")])
                .contains("makes no source")
        );
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
