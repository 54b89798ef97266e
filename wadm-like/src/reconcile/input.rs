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
    /// A snapshot, and whether it holds every host the presence stream holds as live.
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
        client.live_host_ids()
    );
    let inventories = inventories?;
    // Every host the presence stream holds answered, by id (a count could be filled by an
    // answer from a host that announced since, or by a client answering pings). Without the
    // ids (no JetStream), or with one of them silent, nothing is known.
    let heard: std::collections::BTreeSet<&str> =
        inventories.iter().map(|i| i.host_id.as_str()).collect();
    let everyone =
        live.is_some_and(|ids| !ids.is_empty() && ids.iter().all(|id| heard.contains(id.as_str())));
    let snapshot = Snapshot {
        started: None,
        inventories,
        links: Some(links?),
        configs: Some(configs?),
        owners: Some(owners?),
    };
    Ok((snapshot, everyone))
}
