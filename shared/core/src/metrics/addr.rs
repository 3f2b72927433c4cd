//! `METRICS_ADDR`: where a service serves `/metrics`, `/livez` and `/readyz`.
//!
//! Each service has its own default port, so the whole pipeline runs on one machine without
//! setting anything; port 0 picks a free port (tests). Loopback by default: a deployment that
//! scrapes from elsewhere (Prometheus in Docker) sets `0.0.0.0:<port>`.

use std::net::{Ipv4Addr, SocketAddr};

use crate::config::Parser;

/// The variable's name.
pub const METRICS_ADDR: &str = "METRICS_ADDR";

/// The default of each service (the dashboard serves `/metrics` on `DASHBOARD_ADDR`).
pub fn default_for(service: &str) -> SocketAddr {
    let port = match service {
        "extractor" => 9101,
        "transformer" => 9102,
        "loader" => 9103,
        "notifier" => 9104,
        _ => 9100,
    };
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// Reads `METRICS_ADDR` for `service` (its default when unset); a bad value is reported by the
/// parser with the variable's name.
pub fn metrics_addr(p: &mut Parser<'_>, service: &str) -> SocketAddr {
    p.parse(METRICS_ADDR, default_for(service))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Vars;

    #[test]
    fn each_service_has_its_own_loopback_default() {
        let ports: Vec<u16> = ["extractor", "transformer", "loader", "notifier"]
            .iter()
            .map(|s| default_for(s).port())
            .collect();
        assert_eq!(ports, [9101, 9102, 9103, 9104]);
        assert!(default_for("loader").ip().is_loopback());
    }

    #[test]
    fn a_bad_metrics_addr_is_named_in_the_error() {
        let vars = Vars::from_pairs([("METRICS_ADDR", "localhost")]);
        let mut p = Parser::new(&vars);
        let _ = metrics_addr(&mut p, "loader");
        let err = p.finish().unwrap_err();
        assert!(err.to_string().contains("METRICS_ADDR"), "{err}");
    }
}
