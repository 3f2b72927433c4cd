//! The command line every service shares, built with clap from one table of the variables the
//! service reads ([`Spec`]): `--help` lists each with its default and meaning, `--version` prints
//! the version, `--check-config` prints the effective configuration (secrets redacted) and exits
//! 0, or 1 with every problem on its own line. Nothing connects anywhere before these have run.
//!
//! Each variable is also a flag (`NATS_URL` is `--nats-url`), except that a secret given as a
//! flag is refused: every user of the machine can read a command line. Variables are still read
//! from a [`Vars`] snapshot (the process environment with the flags laid over it), so the typed
//! parsers stay as they are and tests keep starting services with settings of their own.
//! [`check_table`] is what each service's unit test runs to keep the table and its parser in
//! step.

use std::collections::BTreeSet;
use std::fmt;

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command};

use super::{ConfigError, Parser, Vars};
use crate::telemetry;

/// How a variable's value may be shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// As it is.
    Plain,
    /// Never: `[redacted]`. Refused as a flag.
    Secret,
    /// A URL, shown without its user, password, and the values of query parameters whose names
    /// suggest a secret (`password`, `token`, `key`, `secret`).
    Url,
}

/// One variable a service reads: its name, default (as people write it), meaning and kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Var {
    /// The variable's name; for a family, a pattern such as `EMAIL_TO_<ENV>`.
    pub name: String,
    pub default: Option<String>,
    pub help: String,
    pub kind: Kind,
    /// For a family of variables: the prefix every member's name starts with.
    pub family: Option<String>,
}

impl Var {
    pub fn new(name: impl Into<String>, help: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            default: None,
            help: help.into(),
            kind: Kind::Plain,
            family: None,
        }
    }

    /// A family of variables, every set variable whose name starts with `prefix` (documented as
    /// `pattern`, such as `EMAIL_TO_<ENV>`).
    pub fn family(
        prefix: impl Into<String>,
        pattern: impl Into<String>,
        help: impl Into<String>,
    ) -> Self {
        Self {
            family: Some(prefix.into()),
            ..Self::new(pattern, help)
        }
    }

    pub fn default_value(mut self, default: impl fmt::Display) -> Self {
        self.default = Some(default.to_string());
        self
    }

    pub fn secret(mut self) -> Self {
        self.kind = Kind::Secret;
        self
    }

    pub fn url(mut self) -> Self {
        self.kind = Kind::Url;
        self
    }

    /// The value as `--check-config` may show it.
    pub fn shown(&self, value: &str) -> String {
        match self.kind {
            Kind::Plain => value.trim().to_owned(),
            Kind::Secret => "[redacted]".to_owned(),
            Kind::Url => redact_url(value.trim()),
        }
    }

    /// The name [`Vars::reads`] records for this variable.
    fn read_name(&self) -> String {
        match &self.family {
            Some(prefix) => format!("{prefix}*"),
            None => self.name.clone(),
        }
    }
}

/// `scheme://[redacted]@host/…?password=[redacted]`: a URL without its credentials; a value that
/// is not a URL is not shown at all (it may be one with a typo, credentials included).
pub fn redact_url(raw: &str) -> String {
    let Ok(mut url) = url::Url::parse(raw) else {
        // A list of servers (a NATS cluster's): each shown without its credentials.
        if raw.contains(',') && raw.split(',').all(|u| url::Url::parse(u.trim()).is_ok()) {
            return raw
                .split(',')
                .map(|u| redact_url(u.trim()))
                .collect::<Vec<_>>()
                .join(",");
        }
        return "[not shown: not a valid URL]".to_owned();
    };
    let had_credentials = !url.username().is_empty() || url.password().is_some();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    let query = url.query().map(|query| {
        query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if looks_secret(key) => format!("{key}=[redacted]"),
                _ => pair.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("&")
    });
    url.set_query(None);
    let mut shown = url.to_string();
    if had_credentials && let Some(at) = shown.find("://") {
        shown.insert_str(at + 3, "[redacted]@");
    }
    if let Some(query) = query {
        shown.push('?');
        shown.push_str(&query);
    }
    shown
}

/// Whether `raw` (a URL, or a comma-separated list of them) carries credentials: a user or
/// password, or a query parameter whose name looks secret.
fn url_holds_secret(raw: &str) -> bool {
    raw.split(',').any(|item| {
        url::Url::parse(item.trim()).is_ok_and(|url| {
            !url.username().is_empty()
                || url.password().is_some()
                || url.query_pairs().any(|(key, _)| looks_secret(&key))
        })
    })
}

fn looks_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["pass", "token", "secret", "key", "auth", "credential"]
        .iter()
        .any(|word| key.contains(word))
}

/// What a service is and every variable it reads (the telemetry ones included).
#[derive(Debug, Clone)]
pub struct Spec {
    pub name: &'static str,
    pub version: &'static str,
    pub about: &'static str,
    pub vars: Vec<Var>,
}

/// Where a variable's effective value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Flag,
    Set,
    Default,
    Unset,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Source::Flag => "flag",
            Source::Set => "set",
            Source::Default => "default",
            Source::Unset => "unset",
        })
    }
}

const CHECK_CONFIG: &str = "check-config";

impl Spec {
    /// `service`'s spec: its own variables, then the telemetry ones every service reads.
    pub fn new(
        name: &'static str,
        version: &'static str,
        about: &'static str,
        mut vars: Vec<Var>,
    ) -> Self {
        vars.extend(telemetry::variables(name));
        Self {
            name,
            version,
            about,
            vars,
        }
    }

    /// The clap command: `--check-config`, and one flag per variable (with its variable).
    pub fn command(&self) -> Command {
        let mut command = Command::new(self.name)
            .version(self.version)
            .about(self.about)
            .long_about(None)
            .arg(
                Arg::new(CHECK_CONFIG)
                    .long(CHECK_CONFIG)
                    .action(ArgAction::SetTrue)
                    .help(
                        "Print the effective configuration (each variable's value and whether it \
                         was set or defaulted, secrets redacted) and exit: 0 when it is valid, 1 \
                         listing every problem on stderr",
                    ),
            )
            .next_help_heading("Variables (each can also be given as its flag, which wins)");
        let mut families = Vec::new();
        for var in &self.vars {
            if var.family.is_some() {
                families.push(format!("  {}\n          {}", var.name, var.help));
                continue;
            }
            let mut help = var.help.clone();
            if let Some(default) = &var.default {
                help.push_str(&format!(" [default: {default}]"));
            }
            if var.kind == Kind::Secret {
                help.push_str(" (secret: environment only, refused as a flag)");
            }
            command = command.arg(
                Arg::new(var.name.clone())
                    .long(flag_name(&var.name))
                    .env(var.name.clone())
                    .hide_env_values(true)
                    .value_name("VALUE")
                    .action(ArgAction::Set)
                    .help(help),
            );
        }
        if !families.is_empty() {
            command = command.after_help(format!(
                "Variable families (environment only):\n{}",
                families.join("\n")
            ));
        }
        command
    }

    /// The process environment with the flags of `matches` laid over it, the names given as
    /// flags, and a problem for each secret given as a flag (which is not used).
    fn vars_from(&self, matches: &ArgMatches, env: Vars) -> (Vars, BTreeSet<String>, Vec<String>) {
        let mut vars = env;
        let mut flags = BTreeSet::new();
        let mut problems = Vec::new();
        for var in self.vars.iter().filter(|var| var.family.is_none()) {
            if matches.value_source(&var.name) != Some(ValueSource::CommandLine) {
                continue;
            }
            let Some(value) = matches.get_one::<String>(&var.name) else {
                continue;
            };
            let holds_secret = match var.kind {
                Kind::Secret => true,
                Kind::Url => url_holds_secret(value),
                Kind::Plain => false,
            };
            if holds_secret {
                problems.push(format!(
                    "{}: holds a secret, which must come from the environment, not --{} (every \
                     user of the machine can read a command line)",
                    var.name,
                    flag_name(&var.name)
                ));
            } else {
                vars.set(var.name.clone(), value.clone());
                flags.insert(var.name.clone());
            }
        }
        (vars, flags, problems)
    }

    /// One line per variable: name, where its value came from, and the value as it may be shown
    /// (families: one line per member set).
    pub fn effective(&self, vars: &Vars, flags: &BTreeSet<String>) -> Vec<String> {
        let mut rows: Vec<(String, Source, String)> = Vec::new();
        for var in &self.vars {
            if let Some(prefix) = &var.family {
                let members = vars.with_prefix(prefix);
                if members.is_empty() {
                    rows.push((var.name.clone(), Source::Unset, String::new()));
                }
                for (name, value) in members {
                    rows.push((name.to_owned(), Source::Set, var.shown(value)));
                }
                continue;
            }
            let row = match (vars.get(&var.name), &var.default) {
                (Some(value), _) => {
                    let source = if flags.contains(&var.name) {
                        Source::Flag
                    } else {
                        Source::Set
                    };
                    (var.name.clone(), source, var.shown(value))
                }
                (None, Some(default)) => (var.name.clone(), Source::Default, default.clone()),
                (None, None) => (var.name.clone(), Source::Unset, String::new()),
            };
            rows.push(row);
        }
        let width = rows.iter().map(|(name, ..)| name.len()).max().unwrap_or(0);
        rows.into_iter()
            .map(|(name, source, value)| {
                format!("  {name:<width$}  {source:<7}  {value}")
                    .trim_end()
                    .to_owned()
            })
            .collect()
    }
}

/// `NATS_URL` → `nats-url`.
fn flag_name(variable: &str) -> String {
    variable.to_ascii_lowercase().replace('_', "-")
}

/// A service's configuration and its telemetry settings, both read from `vars`; every problem of
/// either.
pub fn parse_all<C>(
    spec: &Spec,
    vars: &Vars,
    parse: impl FnOnce(&Vars) -> Result<C, ConfigError>,
) -> Result<(C, telemetry::Settings), ConfigError> {
    let config = parse(vars);
    let mut p = Parser::new(vars);
    let settings = telemetry::Settings::parse(&mut p, spec.name, spec.version);
    let telemetry = p.finish();
    match (config, telemetry) {
        (Ok(config), Ok(())) => Ok((config, settings)),
        (config, telemetry) => {
            let mut lines = config.err().map(|err| err.lines).unwrap_or_default();
            lines.extend(telemetry.err().map(|err| err.lines).unwrap_or_default());
            Err(ConfigError { lines })
        }
    }
}

/// What every `main` does first, before anything connects anywhere: parse the command line
/// (`--help`, `--version` and usage errors print and exit here: 0, 0 and 2), then the service's
/// configuration and telemetry settings from the environment and flags. With `--check-config`
/// print the effective configuration on stdout and exit 0, or 1 with the problems on stderr, one
/// per line; without it, problems are printed the same way and the process exits 1.
pub fn load_or_exit<C>(
    spec: &Spec,
    parse: impl FnOnce(&Vars) -> Result<C, ConfigError>,
) -> (C, telemetry::Settings) {
    let matches = spec.command().get_matches();
    let (vars, flags, mut problems) = spec.vars_from(&matches, Vars::from_env());
    let parsed = parse_all(spec, &vars, parse);
    if let Err(err) = &parsed {
        problems.extend(err.lines.iter().cloned());
    }
    let service = spec.name;
    if matches.get_flag(CHECK_CONFIG) {
        let verdict = if problems.is_empty() {
            "configuration is valid".to_owned()
        } else {
            format!(
                "configuration is invalid ({} problem(s), listed on stderr)",
                problems.len()
            )
        };
        let mut report = vec![format!("{service} {}: {verdict}", spec.version)];
        report.extend(spec.effective(&vars, &flags));
        if let Ok((_, settings)) = &parsed {
            report.push(settings.summary());
        }
        print_lines(&mut std::io::stdout(), &report);
    }
    if !problems.is_empty() {
        let lines: Vec<String> = problems
            .iter()
            .map(|line| format!("{service}: invalid configuration: {line}"))
            .collect();
        print_lines(&mut std::io::stderr(), &lines);
        std::process::exit(1);
    }
    match parsed {
        Ok(_) if matches.get_flag(CHECK_CONFIG) => std::process::exit(0),
        Ok(parsed) => parsed,
        // Not reached: a parse error is a problem, and problems exit above.
        Err(_) => std::process::exit(1),
    }
}

/// Writes `lines`; a closed pipe (`--check-config | head`) is not worth a panic.
fn print_lines(out: &mut impl std::io::Write, lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// Whether `spec`'s table and what its parser reads agree, for a service's unit test:
/// - every variable read by `parse` (and the telemetry settings) is in the table, and every
///   variable in the table is read, over the empty environment and each of `probes` (settings
///   that make the parser read variables it only reads in some cases, such as `NATS_PASSWORD`
///   after `NATS_USER`);
/// - setting a variable to its documented default changes nothing: `show` of the configuration
///   (its `Debug` form, say, less anything that changes on its own, such as a clock) and the
///   telemetry settings are the same as with the variable unset.
///
/// Returns every disagreement, one per line.
pub fn check_table<C>(
    spec: &Spec,
    parse: impl Fn(&Vars) -> Result<C, ConfigError>,
    show: impl Fn(&C) -> String,
    probes: &[&[(&str, &str)]],
) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    let documented: BTreeSet<String> = spec.vars.iter().map(Var::read_name).collect();
    let mut read = BTreeSet::new();
    let empty: &[(&str, &str)] = &[];
    for probe in std::iter::once(empty).chain(probes.iter().copied()) {
        let vars = Vars::from_pairs(probe.iter().copied()).recording();
        let _ = parse_all(spec, &vars, &parse);
        read.extend(vars.reads());
    }
    for name in read.difference(&documented) {
        problems.push(format!("{name} is read but not in --help"));
    }
    for name in documented.difference(&read) {
        problems.push(format!("{name} is in --help but never read"));
    }

    let shown = |vars: &Vars| match parse_all(spec, vars, &parse) {
        Ok((config, settings)) => Ok(format!("{}\n{settings:?}", show(&config))),
        Err(err) => Err(err.to_string()),
    };
    let baseline = shown(&Vars::default());
    if let Err(err) = &baseline {
        problems.push(format!("the defaults do not parse: {err}"));
    }
    for var in &spec.vars {
        let Some(default) = &var.default else {
            continue;
        };
        let with = shown(&Vars::from_pairs([(var.name.as_str(), default.as_str())]));
        if with != baseline {
            problems.push(format!(
                "{}: setting it to its documented default `{default}` changes the configuration",
                var.name
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> Spec {
        Spec::new(
            "demo",
            "1.2.3",
            "A demo service",
            vec![
                Var::new("POLL_INTERVAL", "How often").default_value("60s"),
                Var::new("DEMO_TOKEN", "The token").secret(),
                Var::new("DEMO_URL", "Where").url(),
                Var::family("DEMO_TO_", "DEMO_TO_<ENV>", "Who, per env"),
            ],
        )
    }

    fn parse(vars: &Vars) -> Result<String, ConfigError> {
        let mut p = Parser::new(vars);
        let interval = p.duration("POLL_INTERVAL", "60s");
        let token = p.secret("DEMO_TOKEN");
        let url = p.optional_string("DEMO_URL");
        let to = vars.with_prefix("DEMO_TO_").len();
        p.finish()?;
        Ok(format!("{interval:?} {token:?} {url:?} {to}"))
    }

    #[test]
    fn urls_lose_their_credentials_and_secret_parameters() {
        assert_eq!(
            redact_url("nats://ops:hunter2@nats.example:4222"),
            "nats://[redacted]@nats.example:4222"
        );
        assert_eq!(
            redact_url("postgres://reader@db/covid?sslmode=verify-full&password=hunter2"),
            "postgres://[redacted]@db/covid?sslmode=verify-full&password=[redacted]"
        );
        assert_eq!(
            redact_url("http://127.0.0.1:8080"),
            "http://127.0.0.1:8080/"
        );
        assert_eq!(
            redact_url("nats://ops:hunter2@host:99999"),
            "[not shown: not a valid URL]"
        );
    }

    #[test]
    fn the_effective_configuration_names_each_source_and_hides_secrets() {
        let spec = spec();
        let vars = Vars::from_pairs([
            ("DEMO_TOKEN", "hunter2"),
            ("DEMO_URL", "https://me:hunter2@x.example/"),
            ("DEMO_TO_TEST", "a@x"),
        ]);
        let lines = spec.effective(&vars, &BTreeSet::new()).join("\n");
        assert!(!lines.contains("hunter2"), "{lines}");
        let row = |name: &str| {
            lines
                .lines()
                .find(|l| l.split_whitespace().next() == Some(name))
                .unwrap_or_else(|| panic!("no {name} in {lines}"))
                .split_whitespace()
                .skip(1)
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(row("POLL_INTERVAL"), "default 60s");
        assert_eq!(row("DEMO_TOKEN"), "set [redacted]");
        assert_eq!(row("DEMO_URL"), "set https://[redacted]@x.example/");
        assert_eq!(row("DEMO_TO_TEST"), "set a@x");
        assert_eq!(row("OTEL_EXPORTER_OTLP_ENDPOINT"), "unset");
    }

    #[test]
    fn flags_override_the_environment_but_never_carry_secrets() {
        let spec = spec();
        let matches = spec
            .command()
            .try_get_matches_from([
                "demo",
                "--poll-interval",
                "5s",
                "--demo-token",
                "hunter2",
                "--demo-url",
                "https://ops:hunter3@x.example/",
            ])
            .unwrap();
        let env = Vars::from_pairs([("POLL_INTERVAL", "60s")]);
        let (vars, flags, problems) = spec.vars_from(&matches, env);
        assert_eq!(vars.get("POLL_INTERVAL"), Some("5s"));
        assert!(flags.contains("POLL_INTERVAL"));
        assert_eq!(vars.get("DEMO_TOKEN"), None);
        assert_eq!(
            vars.get("DEMO_URL"),
            None,
            "a URL with credentials is a secret too"
        );
        assert_eq!(problems.len(), 2, "{problems:?}");
        for name in ["DEMO_TOKEN", "DEMO_URL"] {
            let expected = format!("{name}: holds a secret");
            assert!(
                problems.iter().any(|p| p.starts_with(&expected)),
                "{problems:?}"
            );
        }
        assert!(!problems.concat().contains("hunter"));

        // Without credentials, a URL is an ordinary flag.
        let matches = spec
            .command()
            .try_get_matches_from(["demo", "--demo-url", "https://x.example"])
            .unwrap();
        let (vars, _, problems) = spec.vars_from(&matches, Vars::default());
        assert_eq!(
            (vars.get("DEMO_URL"), problems.len()),
            (Some("https://x.example"), 0)
        );
    }

    #[test]
    fn help_lists_every_variable_with_its_default() {
        let help = spec().command().render_help().to_string();
        for needle in [
            "--check-config",
            "POLL_INTERVAL",
            "[default: 60s]",
            "DEMO_TOKEN",
            "DEMO_TO_<ENV>",
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_SDK_DISABLED",
        ] {
            assert!(help.contains(needle), "{needle} missing from:\n{help}");
        }
    }

    #[test]
    fn the_table_check_finds_undocumented_and_wrong_defaults() {
        let spec = spec();
        check_table(&spec, parse, String::clone, &[]).unwrap();

        let mut missing = spec.clone();
        missing.vars.retain(|v| v.name != "DEMO_TOKEN");
        missing.vars.push(Var::new("NEVER_READ", "x"));
        let problems = check_table(&missing, parse, String::clone, &[]).unwrap_err();
        assert_eq!(
            problems,
            vec![
                "DEMO_TOKEN is read but not in --help".to_owned(),
                "NEVER_READ is in --help but never read".to_owned()
            ]
        );

        let mut wrong = spec.clone();
        wrong.vars[0].default = Some("30s".to_owned());
        let problems = check_table(&wrong, parse, String::clone, &[]).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].starts_with("POLL_INTERVAL: setting it to its documented default"));
    }
}
