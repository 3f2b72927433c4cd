//! A durable consumer's lag, read from the server every [`LAG_EVERY`] while the stage consumes:
//! `covid_etl_consumer_pending` (in the stream, not yet delivered) and
//! `covid_etl_consumer_ack_pending` (delivered, not yet settled).

use std::time::Duration;

use async_nats::jetstream;

use super::Metrics;
use super::probe::consumer_info;
use crate::shutdown::Shutdown;

/// How often the lag is read: one `$JS.API.CONSUMER.INFO` request each time.
pub const LAG_EVERY: Duration = Duration::from_secs(5);

/// Records the lag of `durable` on `stream` until `stop`.
pub async fn watch(
    js: jetstream::Context,
    stream: String,
    durable: String,
    stage: &'static str,
    metrics: Metrics,
    stop: Shutdown,
) {
    loop {
        match consumer_info(&js, &stream, &durable).await {
            Ok(info) => metrics.record().consumer_lag(
                &durable,
                stage,
                info.num_pending,
                u64::try_from(info.num_ack_pending).unwrap_or(u64::MAX),
            ),
            Err(err) => tracing::debug!(%durable, ?err, "no consumer lag this time"),
        }
        tokio::select! {
            _ = tokio::time::sleep(LAG_EVERY) => {}
            _ = stop.wait() => return,
        }
    }
}
