//! The lattice's links and named config as the host reads and writes them: the JetStream KV
//! buckets, opened when NATS and JetStream are reachable (a host may start before them), behind
//! [`StateStore`] so the parts that use them can be tested with an in-memory store.

use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt as _;
use tokio_util::sync::CancellationToken;
use trellis_lattice::kv::{Backoff, LatticeState, LatticeStore};
use trellis_lattice::link::{Config, Link, LinkKey};
use trellis_lattice::ControlError;

type Answer<'a, T> = BoxFuture<'a, Result<T, ControlError>>;

/// Links and named config, wherever they are kept.
pub trait StateStore: Send + Sync {
    fn links(&self) -> Answer<'_, Vec<Link>>;
    fn link<'a>(&'a self, key: &'a LinkKey) -> Answer<'a, Option<Link>>;
    /// Stores a link, replacing one with the same identity in one write.
    fn put_link<'a>(&'a self, link: &'a Link) -> Answer<'a, ()>;
    /// Deletes a link; false when there was none.
    fn delete_link<'a>(&'a self, key: &'a LinkKey) -> Answer<'a, bool>;
    fn config<'a>(&'a self, name: &'a str) -> Answer<'a, Option<Config>>;
    fn put_config<'a>(&'a self, name: &'a str, values: &'a Config) -> Answer<'a, ()>;
    /// Deletes a named config; false when there was none.
    fn delete_config<'a>(&'a self, name: &'a str) -> Answer<'a, bool>;

    /// Named configs merged in order (later names win); a missing name is an error naming it.
    fn merged_config<'a>(&'a self, names: &'a [String]) -> Answer<'a, Config> {
        async move {
            let mut merged = Config::new();
            let mut missing = Vec::new();
            for name in names {
                match self.config(name).await? {
                    Some(c) => merged.extend(c),
                    None => missing.push(name.as_str()),
                }
            }
            if missing.is_empty() {
                Ok(merged)
            } else {
                Err(ControlError::not_found(format!(
                    "config {:?}: no such named config (create it with `trellis config put NAME key=value...`)",
                    missing.join(", ")
                )))
            }
        }
        .boxed()
    }
}

/// The lattice's KV buckets, opened on first use; while they cannot be reached (a host on a
/// leaf cut off from the hub), reads come from the host's saved copy.
pub struct LatticeKv {
    state: LatticeState,
}

impl LatticeKv {
    pub fn new(state: LatticeState) -> Self {
        Self { state }
    }

    pub fn state(&self) -> &LatticeState {
        &self.state
    }

    /// The buckets, opening them if this is the first use.
    pub async fn store(&self) -> Result<&LatticeStore, ControlError> {
        self.state
            .store()
            .await
            .map_err(|e| ControlError::unavailable(format!("lattice store unavailable: {e}")))
    }

    /// Waits until the buckets open (retrying with back-off), or `None` at shutdown.
    pub async fn opened(&self, shutdown: &CancellationToken) -> Option<LatticeStore> {
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
        loop {
            match self.store().await {
                Ok(store) => return Some(store.clone()),
                Err(err) => tracing::debug!(%err, "lattice store not ready"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return None,
                _ = tokio::time::sleep(backoff.next_delay()) => {}
            }
        }
    }
}

fn unavailable(e: trellis_lattice::Error) -> ControlError {
    ControlError::from(e)
}

impl StateStore for LatticeKv {
    fn links(&self) -> Answer<'_, Vec<Link>> {
        async move { Ok(self.state.snapshot().await.map_err(unavailable)?.0) }.boxed()
    }

    fn link<'a>(&'a self, key: &'a LinkKey) -> Answer<'a, Option<Link>> {
        async move { self.state.link(key).await.map_err(unavailable) }.boxed()
    }

    fn put_link<'a>(&'a self, link: &'a Link) -> Answer<'a, ()> {
        async move {
            self.store()
                .await?
                .put_link(link)
                .await
                .map_err(unavailable)
        }
        .boxed()
    }

    fn delete_link<'a>(&'a self, key: &'a LinkKey) -> Answer<'a, bool> {
        async move {
            self.store()
                .await?
                .delete_link(key)
                .await
                .map_err(unavailable)
        }
        .boxed()
    }

    fn config<'a>(&'a self, name: &'a str) -> Answer<'a, Option<Config>> {
        async move { self.state.config(name).await.map_err(unavailable) }.boxed()
    }

    fn put_config<'a>(&'a self, name: &'a str, values: &'a Config) -> Answer<'a, ()> {
        async move {
            self.store()
                .await?
                .put_config(name, values)
                .await
                .map_err(unavailable)
        }
        .boxed()
    }

    fn delete_config<'a>(&'a self, name: &'a str) -> Answer<'a, bool> {
        async move {
            self.store()
                .await?
                .delete_config(name)
                .await
                .map_err(unavailable)
        }
        .boxed()
    }
}
