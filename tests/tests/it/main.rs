//! The workspace's end-to-end tests, in one binary: the extractor against the fake GitHub, the
//! whole pipeline, `etl smoke`, and operability with each service as its own process.

mod extractor;
mod hostile;
mod operability;
mod pipeline;
mod smoke;
mod support;
