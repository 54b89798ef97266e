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

mod config;
mod daemon;
mod link;
mod spread;
mod workload;

#[cfg(test)]
mod testkit;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use trellis_lattice::link::{Config, Link, LinkKey};
use trellis_lattice::manifest::{
    annotations as ann, ComponentKind, ComponentSpec, Manifest, Trait,
};

use crate::model::Observed;
use crate::placement::Placer;

/// One change to the lattice.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    /// Run `replicas` of a component on a host (absolute, so repeating it is harmless);
    /// 0 stops it. A new image replaces the running one in place without a gap.
    ScaleComponent {
        host_id: String,
        component_id: String,
        image: String,
        replicas: u32,
        /// Named configs the component reads (`properties.config`).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        config: Vec<String>,
        annotations: BTreeMap<String, String>,
    },
    StartProvider {
        host_id: String,
        provider_id: String,
        image: String,
        config: Vec<String>,
        annotations: BTreeMap<String, String>,
    },
    StopProvider {
        host_id: String,
        provider_id: String,
    },
    PutConfig {
        name: String,
        values: Config,
    },
    /// Put a link; one with the same identity is retargeted atomically.
    PutLink(Link),
    DeleteLink(LinkKey),
    DeleteConfig {
        name: String,
    },
}

impl Command {
    /// Execution order: config before what reads it; new copies and targets before links
    /// point at them; links moved before old copies stop; removals last.
    pub fn phase(&self) -> u8 {
        match self {
            Command::PutConfig { .. } => 0,
            Command::StartProvider { .. } => 1,
            Command::ScaleComponent { replicas, .. } if *replicas > 0 => 1,
            Command::PutLink(_) => 2,
            Command::ScaleComponent { .. } | Command::StopProvider { .. } => 3,
            Command::DeleteLink(_) => 4,
            Command::DeleteConfig { .. } => 5,
        }
    }

    /// Whether the command starts or grows something (as opposed to removing).
    pub fn is_start(&self) -> bool {
        match self {
            Command::StartProvider { .. } => true,
            Command::ScaleComponent { replicas, .. } => *replicas > 0,
            _ => false,
        }
    }
}

pub use trellis_lattice::app::{AppState, ScalerState, ScalerStatus};

/// What to do next and where the app stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// To execute in this order.
    pub commands: Vec<Command>,
    pub scalers: Vec<ScalerStatus>,
    pub state: AppState,
}

/// The annotations put on every component and provider the app starts.
pub fn managed_annotations(
    manifest: &Manifest,
    component: &ComponentSpec,
) -> BTreeMap<String, String> {
    let mut a = BTreeMap::from([
        (
            ann::MANAGED_BY.to_string(),
            ann::MANAGED_BY_VALUE.to_string(),
        ),
        (ann::APP.to_string(), manifest.name().to_string()),
        (ann::COMPONENT.to_string(), component.name.clone()),
    ]);
    if let Some(v) = manifest.version() {
        a.insert(ann::APP_VERSION.to_string(), v.to_string());
    }
    a
}

/// Whether the app named `app` manages a resource with these annotations.
pub fn is_managed_by(annotations: &BTreeMap<String, String>, app: &str) -> bool {
    annotations.get(ann::MANAGED_BY).map(String::as_str) == Some(ann::MANAGED_BY_VALUE)
        && annotations.get(ann::APP).map(String::as_str) == Some(app)
}

/// What one scaler wants done and how it stands.
pub(crate) struct ScalerOutput {
    pub commands: Vec<Command>,
    pub status: ScalerStatus,
}

/// Shared inputs of every scaler.
pub(crate) struct Ctx<'a> {
    pub manifest: &'a Manifest,
    pub observed: &'a Observed,
    pub placer: Placer<'a>,
}

impl<'a> Ctx<'a> {
    fn new(manifest: &'a Manifest, observed: &'a Observed) -> Self {
        Self {
            manifest,
            observed,
            placer: Placer::new(manifest, observed),
        }
    }

    fn app(&self) -> &str {
        self.manifest.name()
    }
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
            .map(|l| Command::DeleteLink(l.key())),
    );
    commands.extend(
        config::owned(manifest)
            .into_keys()
            .filter(|name| observed.configs.contains_key(name))
            .map(|name| Command::DeleteConfig { name }),
    );
    commands
}

/// Providers run once per host, components with replicas.
fn per_host_cap(kind: ComponentKind) -> Option<u32> {
    match kind {
        ComponentKind::Capability => Some(1),
        ComponentKind::Component => None,
    }
}
