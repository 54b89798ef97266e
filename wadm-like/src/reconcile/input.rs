//! What the reconcile loop reacts to, and the lattice snapshot it reads on every full pass.

use trellis_lattice::event::CloudEvent;
use trellis_lattice::inventory::HostInventory;
use trellis_lattice::link::Config;
use trellis_lattice::LatticeClient;

use crate::claims;
use crate::records::{AppRecord, AppStore};
use crate::scaler::Command;
use crate::view::Snapshot;

/// What the loop reacts to.
pub enum Input {
    Event(Box<CloudEvent>),
    Record(String, Option<Box<AppRecord>>),
    /// A snapshot, and whether it holds every host the presence stream counts as live.
    Snapshot(Snapshot, bool),
    SnapshotFailed(String),
    Config(String, Option<Config>),
    Probe(String, Probe),
    Done {
        app: String,
        command: Command,
        result: Result<(), String>,
    },
    JobDone {
        app: String,
    },
    StoreDone {
        app: String,
    },
}

pub enum Probe {
    Alive(Box<HostInventory>),
    Gone,
    NoAnswer,
}

/// Inventories, links, configs and who owns which, read at once.
pub async fn snapshot(
    client: &LatticeClient,
    store: &AppStore,
) -> anyhow::Result<(Snapshot, bool)> {
    let (inventories, links, configs, owners, live) = tokio::join!(
        client.inventories(),
        client.links(),
        client.named_configs(),
        claims::all(store),
        client.live_host_count()
    );
    let inventories = inventories?;
    // Without a count (no JetStream), or with a counted host silent, nothing is known.
    let everyone = live.is_some_and(|n| n > 0 && inventories.len() as u64 >= n);
    let snapshot = Snapshot {
        started: None,
        inventories,
        links: Some(links?),
        configs: Some(configs?),
        owners: Some(owners?),
    };
    Ok((snapshot, everyone))
}
