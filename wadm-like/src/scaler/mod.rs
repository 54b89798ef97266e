//! Scalers: pure functions of (manifest, observed lattice) to commands and status, in the
//! style of kube-runtime's `reconcile`. The caller executes the commands in order, observes
//! the lattice again and calls [`plan`] again; on a lattice that already matches, [`plan`]
//! returns no commands.
//!
//! - [`spread`]: `spreadscaler`, replicas across hosts by weight.
//! - [`daemon`]: `daemonscaler`, replicas on every matching host.
//! - [`workload`]: what both share: moving one component's or provider's placements to the
//!   desired ones, touching only what this app manages.
//! - [`link`]: links, and deleting the links an earlier version declared.
//! - [`config`]: inline config, and deleting what an earlier version declared.
//!
//! What the app manages is marked with annotations ([`managed_annotations`]); anything else
//! (unannotated or another app's) is never changed, even when it has the id the app wants.

pub mod command;
mod config;
mod context;
mod daemon;
mod link;
mod spread;
mod workload;

#[cfg(test)]
pub(crate) mod testkit;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use trellis_lattice::link::LinkKey;
use trellis_lattice::manifest::{Manifest, Trait};

pub use command::{is_managed_by, managed_annotations, Command};
use context::{Ctx, ScalerOutput};

use crate::model::{Claim, Observed};

pub use trellis_lattice::app::{AppState, ScalerState, ScalerStatus};

/// What to do next and where the app stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// To execute in this order.
    pub commands: Vec<Command>,
    pub scalers: Vec<ScalerStatus>,
    pub state: AppState,
}

/// The next commands to make the lattice match `manifest`, and the status of every scaler.
/// `previous` is the manifest deployed before (another version), whose links and inline
/// config this one no longer declares are deleted; components and providers the app no
/// longer declares are found by their annotations and stopped.
pub fn plan(manifest: &Manifest, previous: Option<&Manifest>, observed: &Observed) -> Plan {
    let ctx = Ctx::new(manifest, observed);
    let mut outputs: Vec<ScalerOutput> = Vec::new();
    outputs.extend(config::scale(&ctx));
    for c in &manifest.spec.components {
        match c.scaler() {
            Some(Trait::SpreadScaler(s)) => outputs.push(spread::scale(&ctx, c, s)),
            Some(Trait::DaemonScaler(d)) => outputs.push(daemon::scale(&ctx, c, d)),
            _ => {}
        }
    }
    outputs.extend(link::scale(&ctx));

    let mut commands: Vec<Command> = outputs
        .iter_mut()
        .flat_map(|o| o.commands.drain(..))
        .collect();
    let scalers: Vec<ScalerStatus> = outputs.into_iter().map(|o| o.status).collect();

    // Removing what the app no longer declares waits until everything new runs, so a new
    // version takes over before the old one leaves (the next pass removes it).
    if !commands.iter().any(Command::is_start) {
        commands.extend(workload::orphans(&ctx));
        if let Some(prev) = previous {
            commands.extend(link::removed(manifest, prev, observed));
            commands.extend(config::removed(manifest, prev, observed));
        }
    }
    commands.sort_by_key(Command::phase);
    let state = AppState::roll_up(&scalers, !commands.is_empty());
    Plan {
        commands,
        scalers,
        state,
    }
}

/// Removes exactly what the app placed: its annotated components and providers on every
/// host, the links it declares, and the inline config it owns. Unannotated resources, other
/// apps' resources and named config it only references are left alone.
pub fn plan_undeploy(manifest: &Manifest, observed: &Observed) -> Vec<Command> {
    let app = manifest.name();
    let mut commands = Vec::new();
    for host in observed.hosts.values() {
        for (id, c) in &host.components {
            if is_managed_by(&c.annotations, app) {
                commands.push(Command::ScaleComponent {
                    host_id: host.id.clone(),
                    component_id: id.clone(),
                    image: c.image.clone(),
                    replicas: 0,
                    config: Vec::new(),
                    annotations: BTreeMap::new(),
                    grants: Default::default(),
                    issuer: None,
                });
            }
        }
        for (id, p) in &host.providers {
            if is_managed_by(&p.annotations, app) {
                commands.push(Command::StopProvider {
                    host_id: host.id.clone(),
                    provider_id: id.clone(),
                });
            }
        }
    }
    let keys: BTreeSet<LinkKey> = link::declared(manifest)
        .into_iter()
        .map(|l| l.key())
        .collect();
    commands.extend(
        observed
            .links
            .iter()
            .filter(|l| keys.contains(&l.key()))
            .filter(|l| observed.owns(&Claim::Link(l.key()), app))
            .map(|l| Command::DeleteLink(l.key())),
    );
    // Only what the app created: a config a user put by hand outlives the app.
    commands.extend(
        config::owned(manifest)
            .into_keys()
            .filter(|name| observed.configs.contains_key(name))
            .filter(|name| observed.owns(&Claim::Config(name.clone()), app))
            .map(|name| Command::DeleteConfig { name }),
    );
    commands
}

/// What a manifest would create and own: its inline configs and its links.
pub fn claims(manifest: &Manifest) -> Vec<Claim> {
    config::owned(manifest)
        .into_keys()
        .map(Claim::Config)
        .chain(
            link::declared(manifest)
                .iter()
                .map(|l| Claim::Link(l.key())),
        )
        .collect()
}
