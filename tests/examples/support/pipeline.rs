//! What the examples share: the four pipeline services started in-process from one set of
//! variables, stopped together, and a wait for the next run notification.

use std::time::Duration;

use anyhow::Context;
use futures::StreamExt;
use shared::Shutdown;
use shared::config::Vars;
use shared::events::Notification;
use tokio::task::JoinHandle;

pub struct Pipeline {
    shutdown: Shutdown,
    services: Vec<JoinHandle<anyhow::Result<()>>>,
}

impl Pipeline {
    /// Starts transformer, loader, notifier and extractor with `vars`.
    pub fn start(vars: &Vars) -> anyhow::Result<Self> {
        let shutdown = Shutdown::new();
        let services = vec![
            tokio::spawn(transformer::run(
                transformer::Config::from_vars(vars)?,
                shutdown.clone(),
            )),
            tokio::spawn(loader::run(
                loader::Config::from_vars(vars)?,
                shutdown.clone(),
            )),
            tokio::spawn(notifier::run(
                notifier::Config::from_vars(vars)?,
                shutdown.clone(),
            )),
            tokio::spawn(extractor::run(
                extractor::Config::from_vars(vars)?,
                shutdown.clone(),
            )),
        ];
        Ok(Self { shutdown, services })
    }

    /// Stops every service and reports the first that failed.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.trigger();
        for service in self.services {
            service.await??;
        }
        Ok(())
    }
}

/// The next run notification on `subscriber` (other messages are skipped), within 30 s.
pub async fn next_notification(
    subscriber: &mut async_nats::Subscriber,
) -> anyhow::Result<Notification> {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(30), subscriber.next())
            .await
            .context("no notification within 30 s")?
            .context("the subscription ended")?;
        if let Ok(notification) = serde_json::from_slice(&message.payload) {
            return Ok(notification);
        }
    }
}
