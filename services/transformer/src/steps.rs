//! How long each step of a run took, and what a blocking task that died says: shared by the `us`
//! and the keyed runs.

use std::time::Instant;

use shared::events::Timings;

/// Milliseconds per step, in the order the steps ran.
pub(crate) struct Steps {
    pub timings: Timings,
    last: Instant,
}

impl Steps {
    pub fn start() -> Self {
        Self {
            timings: Vec::new(),
            last: Instant::now(),
        }
    }

    /// Records the time since the previous lap as `name`.
    pub fn lap(&mut self, name: &str) {
        let ms = elapsed_ms(self.last);
        self.record(name, ms);
        self.last = Instant::now();
    }

    /// Records a step measured elsewhere (inside a blocking task).
    pub fn record(&mut self, name: &str, ms: u64) {
        self.timings.push((name.to_owned(), ms));
    }

    /// Records the time since the previous lap, minus `already` ms recorded on their own.
    pub fn lap_remaining(&mut self, name: &str, already: u64) {
        let ms = elapsed_ms(self.last).saturating_sub(already);
        self.record(name, ms);
        self.last = Instant::now();
    }
}

pub(crate) fn elapsed_ms(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Why a blocking task ended without a result, in one sentence.
pub(crate) fn panic_message(err: tokio::task::JoinError) -> String {
    if !err.is_panic() {
        return "the task was cancelled".to_owned();
    }
    let payload = err.into_panic();
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_timings_keep_their_order() {
        let mut steps = Steps::start();
        steps.lap("read");
        steps.record("transform", 7);
        steps.lap_remaining("parquet", 7);
        let names: Vec<&str> = steps.timings.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["read", "transform", "parquet"]);
        assert_eq!(steps.timings[1].1, 7);
    }
}
