//! Keeps the configuration of running components current: a change to a named config reaches
//! every component that reads it with its next instance.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use trellis_lattice::link::Config;
use trellis_lattice::store::{Change, LatticeStore};

use crate::host::HostState;

/// Follows the config bucket until the host shuts down, re-subscribing after connection loss.
pub async fn follow(host: Arc<HostState>, store: LatticeStore) {
    let mut configs: HashMap<String, Config> = HashMap::new();
    let mut backoff = Duration::from_millis(100);
    while !host.shutdown.is_cancelled() {
        match store.watch_configs().await {
            Ok(mut changes) => {
                backoff = Duration::from_millis(100);
                loop {
                    let change = tokio::select! {
                        _ = host.shutdown.cancelled() => return,
                        change = changes.next() => change,
                    };
                    let name = match change {
                        Some(Change::Put((name, values))) => {
                            configs.insert(name.clone(), values);
                            name
                        }
                        Some(Change::Deleted(name)) => {
                            configs.remove(&name);
                            name
                        }
                        None => break,
                    };
                    for comp in host.components.all() {
                        if comp.uses_config(&name) {
                            comp.remerge_config(&configs);
                            tracing::info!(component_id = %comp.id, config = %name, "component configuration changed");
                        }
                    }
                }
                tracing::debug!("config watch ended; watching again");
            }
            Err(err) => tracing::warn!(%err, "cannot watch config; retrying"),
        }
        tokio::select! {
            _ = host.shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}
