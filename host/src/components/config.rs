//! Keeps the configuration of running components current: a change to a named config reaches
//! every component that reads it with its next instance.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use trellis_lattice::kv::{self, Change, Configs, LatticeStore, Update};

use super::Components;

/// Follows the config bucket until `shutdown`, re-reading it after any gap.
pub async fn follow(components: Arc<Components>, store: LatticeStore, shutdown: CancellationToken) {
    let mut configs = Configs::new();
    kv::follow(store.configs_followed(), shutdown, move |update| {
        let changed: Vec<String> = match update {
            Update::Snapshot(all) => {
                let changed = all
                    .iter()
                    .filter(|(name, values)| configs.get(*name) != Some(values))
                    .map(|(name, _)| name.clone())
                    .chain(configs.keys().filter(|n| !all.contains_key(*n)).cloned())
                    .collect();
                configs = all;
                changed
            }
            Update::Change(Change::Put((name, values))) => {
                configs.insert(name.clone(), values);
                vec![name]
            }
            Update::Change(Change::Deleted(name)) => {
                configs.remove(&name);
                vec![name]
            }
        };
        for comp in components.all() {
            if let Some(name) = changed.iter().find(|n| comp.uses_config(n)) {
                comp.remerge_config(&configs, components.secrets());
                tracing::info!(component_id = %comp.id, config = %name, "component configuration changed");
            }
        }
    })
    .await
}
