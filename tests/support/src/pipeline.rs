//! The pipeline's services, started in-process from one set of variables and stopped together.

use crate::Running;
use crate::stack::{Identity, as_identity};
use shared::config::Vars;

/// Which stages run: the extractor is left out when a test plays its part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stages {
    /// Transformer, loader and notifier.
    AfterExtract,
    /// Extractor, transformer, loader and notifier.
    All,
}

/// The real services, running in this process until [`Pipeline::stop`].
pub struct Pipeline {
    services: Vec<Running>,
}

impl Pipeline {
    /// Starts `stages` with `vars`, each service connecting to NATS as itself
    /// ([`as_identity`]); a bad setting is an error naming the service.
    pub fn start(vars: &Vars, stages: Stages) -> anyhow::Result<Self> {
        let mut services = Vec::new();
        if stages == Stages::All {
            let config = extractor::Config::from_vars(&as_identity(vars, Identity::Extractor))
                .map_err(|err| anyhow::anyhow!("extractor: {err}"))?;
            services.push(Running::spawn("extractor", |shutdown| {
                extractor::run(config, shutdown)
            }));
        }
        let config = transformer::Config::from_vars(&as_identity(vars, Identity::Transformer))
            .map_err(|err| anyhow::anyhow!("transformer: {err}"))?;
        services.push(Running::spawn("transformer", |shutdown| {
            transformer::run(config, shutdown)
        }));
        let config = loader::Config::from_vars(&as_identity(vars, Identity::Loader))
            .map_err(|err| anyhow::anyhow!("loader: {err}"))?;
        services.push(Running::spawn("loader", |shutdown| {
            loader::run(config, shutdown)
        }));
        let config = notifier::Config::from_vars(&as_identity(vars, Identity::Notifier))
            .map_err(|err| anyhow::anyhow!("notifier: {err}"))?;
        services.push(Running::spawn("notifier", |shutdown| {
            notifier::run(config, shutdown)
        }));
        Ok(Self { services })
    }

    /// Stops every service at once, each checked to return cleanly in bounded time.
    pub async fn stop(self) {
        futures::future::join_all(self.services.into_iter().map(Running::stop)).await;
    }
}
