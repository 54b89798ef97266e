//! What the scalers say: the commands that change the lattice, and the annotations that mark
//! what an app manages.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use trellis_lattice::link::{Config, Link, LinkKey};
use trellis_lattice::grants::Grants;
use trellis_lattice::manifest::{annotations as ann, ComponentSpec, Manifest};

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
        /// What the component may reach beyond its links (`properties`: env, preopens,
        /// allowed-outbound-hosts, wall-clock).
        #[serde(default, skip_serializing_if = "Grants::is_empty")]
        grants: Grants,
        /// The issuer the component must be signed by (`properties.issuer`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        issuer: Option<String>,
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
    /// The host the command goes to, if it goes to one.
    pub fn host_id(&self) -> Option<&str> {
        match self {
            Command::ScaleComponent { host_id, .. }
            | Command::StartProvider { host_id, .. }
            | Command::StopProvider { host_id, .. } => Some(host_id),
            _ => None,
        }
    }
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

    /// The control operation it is, as spans name it (`component.scale`, `link.put`, …).
    pub fn operation(&self) -> &'static str {
        match self {
            Command::ScaleComponent { .. } => "component.scale",
            Command::StartProvider { .. } => "provider.start",
            Command::StopProvider { .. } => "provider.stop",
            Command::PutConfig { .. } => "config.put",
            Command::DeleteConfig { .. } => "config.delete",
            Command::PutLink(_) => "link.put",
            Command::DeleteLink(_) => "link.delete",
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
