//! Test support for covid-etl's workspace-level tests.
//!
//! - [`fake_github`]: a fake GitHub (commits, contents, raw) over real HTTP, with fault injection
//!   and a request log; the `fake-github` binary replays real upstream history through it.

pub mod fake_github;
