//! A service's `run(config, shutdown)` on a task of the test's process.

use std::future::Future;
use std::time::Duration;

use shared::Shutdown;
use tokio::task::JoinHandle;

/// How long a service may take to stop once asked.
const STOP_WITHIN: Duration = Duration::from_secs(20);

/// A service running in-process until [`Running::stop`].
pub struct Running {
    name: &'static str,
    shutdown: Shutdown,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Starts `run` with a shutdown token of its own: `Running::spawn("loader", |shutdown|
    /// loader::run(config, shutdown))`.
    pub fn spawn<F, Fut>(name: &'static str, run: F) -> Self
    where
        F: FnOnce(Shutdown) -> Fut,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let shutdown = Shutdown::new();
        let task = tokio::spawn(run(shutdown.clone()));
        Self {
            name,
            shutdown,
            task,
        }
    }

    /// Whether the service is still running (a service must never end by itself).
    pub fn is_running(&self) -> bool {
        !self.task.is_finished()
    }

    /// Asks the service to stop, and checks that it returned cleanly within 20 s.
    pub async fn stop(self) {
        self.stop_within(STOP_WITHIN).await;
    }

    /// Asks the service to stop, and checks that it returned cleanly within `timeout`.
    pub async fn stop_within(self, timeout: Duration) {
        self.shutdown.trigger();
        let name = self.name;
        tokio::time::timeout(timeout, self.task)
            .await
            .unwrap_or_else(|_| panic!("{name} did not stop within {timeout:?}"))
            .unwrap_or_else(|err| panic!("{name} panicked: {err}"))
            .unwrap_or_else(|err| panic!("{name} failed: {err:#}"));
    }
}
