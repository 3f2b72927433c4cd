//! An env of one test's own, and removing everything it left behind.

use shared::nats::{self, ETL_STREAM, Stores};
use shared::{Env, Shutdown};

use crate::stack::{self, Identity};
use crate::{EventLog, Notifications, postgres};

/// A fresh env name, `<prefix>_<12 random hex digits>`: its subjects, objects, keys and schema
/// are the test's own, so tests run side by side.
pub fn unique_env(prefix: &str) -> Env {
    let id = uuid::Uuid::new_v4().simple().to_string();
    Env::new(format!("{prefix}_{}", &id[..12]))
        .unwrap_or_else(|err| panic!("prefix {prefix:?} makes a bad env name: {err}"))
}

/// A test's env on the stack's NATS, with the JetStream resources declared as the services
/// declare them.
pub struct TestEnv {
    pub env: Env,
    pub stores: Stores,
}

impl TestEnv {
    /// A [`unique_env`] named after `prefix`, and the stack's NATS ([`stores`]).
    pub async fn new(prefix: &str) -> Self {
        Self::named(unique_env(prefix)).await
    }

    /// An env the caller chose (a tool replaying into an env kept for inspection).
    pub async fn named(env: Env) -> Self {
        Self {
            env,
            stores: stores().await,
        }
    }

    /// The variables for a service serving this env alone (see [`stack::vars`]).
    pub fn vars(&self) -> shared::config::Vars {
        stack::vars(&self.env)
    }

    /// The variables for service `identity` serving this env alone, as itself (see
    /// [`stack::vars_for`]).
    pub fn vars_for(&self, identity: Identity) -> shared::config::Vars {
        stack::vars_for(identity, &self.env)
    }

    /// Every event the `ETL` stream stores for the env, from the first.
    pub async fn events(&self) -> EventLog {
        EventLog::open(&self.stores.js, ETL_STREAM, format!("etl.{}.>", self.env)).await
    }

    /// Every message on `notify.<env>`, from the first.
    pub async fn notifications(&self) -> Notifications {
        Notifications::open(&self.stores.js, &self.env).await
    }

    /// Removes everything the env left: see [`clean_up`].
    pub async fn clean_up(self) {
        clean_up_with(&self.stores, &self.env).await;
    }
}

/// The stack's NATS as the operator, with the streams, object stores and bucket declared as the
/// services declare them. Installs the crypto provider, as every service's `main` does.
pub async fn stores() -> Stores {
    shared::install_crypto_provider();
    let config = stack::nats_config(Identity::Operator);
    let client = nats::connect(&config, "covid-etl-test", &Shutdown::new())
        .await
        .expect("NATS is reachable (scripts/stack.sh up)");
    nats::setup(client, config.replicas)
        .await
        .expect("JetStream resources are declared")
}

/// Removes everything a test left for `env`, once its services have stopped: its events, keys
/// and objects and the consumers serving it alone ([`shared::cleanup`], which `etl smoke` uses
/// too), and its schema. Tests call it once they have passed: a failed test's leftovers stay, for
/// looking into.
pub async fn clean_up(env: &Env) {
    clean_up_with(&stores().await, env).await;
}

async fn clean_up_with(stores: &Stores, env: &Env) {
    shared::cleanup::purge_env(stores, env)
        .await
        .unwrap_or_else(|err| panic!("cleaning up env {env}: {err}"));
    shared::cleanup::delete_consumers(&stores.js, env)
        .await
        .unwrap_or_else(|err| panic!("cleaning up env {env}: {err}"));
    postgres::drop_schema(env).await;
}
