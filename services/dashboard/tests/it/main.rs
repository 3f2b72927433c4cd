//! The dashboard's integration tests, in one binary: the series API, the service (runs, live
//! events, roles, the static page) and the page in a real browser.

mod api_series;
mod api_service;
mod browser;
mod support;
