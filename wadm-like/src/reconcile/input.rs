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
    Snapshot(Snapshot),
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
pub async fn snapshot(client: &LatticeClient, store: &AppStore) -> anyhow::Result<Snapshot> {
    let (inventories, links, configs, owners) = tokio::join!(
        client.inventories(),
        client.links(),
        client.named_configs(),
        claims::all(store)
    );
    Ok(Snapshot {
        started: None,
        inventories: inventories?,
        links: Some(links?),
        configs: Some(configs?),
        owners: Some(owners?),
    })
}
