//! The workspace's end-to-end tests, in one binary: the extractor against the fake GitHub, the
//! whole pipeline, `etl smoke`, operability with each service as its own process, and the stage
//! protocol's guarantees under hostile input, hung handlers, skewed clocks and simultaneous events.

mod binaries;
mod clocks;
mod cluster;
mod demo;
mod extractor;
mod hostile;
mod keyed;
mod lease;
mod lockdown;
mod lockdown_postgres;
mod metrics;
mod operability;
mod pipeline;
mod secrets;
mod simultaneous;
mod smoke;
mod support;
mod watchdog;
