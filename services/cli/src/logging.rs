//! `etl`'s logs: on stderr, quiet (errors only) unless asked with `-v` (info), `-vv` (debug) or
//! `-vvv` (trace); `RUST_LOG` overrides the level, `LOG_FORMAT=json` prints JSON lines. The
//! tool's own output is on stdout ([`crate::output`]), so logs never mix into a `--json` document.

use tracing_subscriber::EnvFilter;

/// The filter for `-v` given `verbose` times.
pub fn level(verbose: u8) -> &'static str {
    match verbose {
        0 => "error",
        1 => "info",
        2 => "debug",
        _ => "trace",
    }
}

/// Installs the subscriber; call once, first thing in `main`.
pub fn init(verbose: u8) {
    let filter = match std::env::var("RUST_LOG") {
        Ok(filter) if !filter.trim().is_empty() => EnvFilter::new(filter),
        _ => EnvFilter::new(level(verbose)),
    };
    let json = std::env::var("LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    // Another subscriber already installed (a test calling twice) is fine: keep it.
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
