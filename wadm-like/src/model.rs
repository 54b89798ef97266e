//! The observed lattice, as the scalers see it: hosts with their labels and what they run,
//! the links, and the named config. The reconcile loop builds it from heartbeats and the
//! lattice store; tests build it by hand.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use trellis_lattice::inventory::{HostInventory, ProviderHealth};
use trellis_lattice::labels::Labels;
use trellis_lattice::link::{Config, Link, LinkKey};

use crate::scaler::command::Command;

/// Everything the scalers need to know about the lattice.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observed {
    /// Live hosts by id. A host that missed its heartbeats is simply absent.
    pub hosts: BTreeMap<String, ObservedHost>,
    pub links: Vec<Link>,
    /// Named config by name.
    pub configs: BTreeMap<String, Config>,
    /// Which app created which config and link (what it may change and delete).
    #[serde(skip)]
    pub owners: BTreeMap<Claim, String>,
    /// Hosts in `hosts` that stopped answering without saying goodbye (a crash, or a leaf
    /// node cut off from the hub), and since when: kept with what they last ran, sent no
    /// commands, left out of an app's plans once its grace period has passed.
    #[serde(skip)]
    pub unreachable: BTreeMap<String, tokio::time::Instant>,
}

/// The grace an app gives unreachable hosts
/// ([`trellis_lattice::manifest::UNREACHABLE_GRACE_ANNOTATION`]; 0 when absent, and
/// validation refuses an unreadable one).
pub fn unreachable_grace(manifest: &trellis_lattice::manifest::Manifest) -> std::time::Duration {
    manifest
        .metadata
        .annotations
        .get(trellis_lattice::manifest::UNREACHABLE_GRACE_ANNOTATION)
        .and_then(|v| humantime::parse_duration(v).ok())
        .unwrap_or_default()
}

impl Observed {
    /// Whether commands can reach `host_id` now.
    pub fn reachable(&self, host_id: &str) -> bool {
        !self.unreachable.contains_key(host_id)
    }

    /// The lattice as an app with `grace` plans it: hosts unreachable for longer are left
    /// out, so what they ran is placed elsewhere if it can be.
    pub fn within_grace(
        &self,
        grace: std::time::Duration,
        now: tokio::time::Instant,
    ) -> std::borrow::Cow<'_, Observed> {
        let expired: Vec<&String> = self
            .unreachable
            .iter()
            .filter(|(_, since)| now.duration_since(**since) >= grace)
            .map(|(id, _)| id)
            .collect();
        if expired.is_empty() {
            return std::borrow::Cow::Borrowed(self);
        }
        let mut view = self.clone();
        for id in expired {
            view.hosts.remove(id);
            view.unreachable.remove(id);
        }
        std::borrow::Cow::Owned(view)
    }
}

/// A config or link an app created and owns.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Claim {
    Config(String),
    Link(LinkKey),
}

impl std::fmt::Display for Claim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Claim::Config(name) => write!(f, "config {name}"),
            Claim::Link(k) => write!(
                f,
                "link {} {}:{} ({})",
                k.source_id, k.wit_namespace, k.wit_package, k.name
            ),
        }
    }
}

impl Claim {
    /// The command that creates or changes what this claim names, if `command` is one.
    pub fn of(command: &Command) -> Option<Claim> {
        match command {
            Command::PutConfig { name, .. } | Command::DeleteConfig { name } => {
                Some(Claim::Config(name.clone()))
            }
            Command::PutLink(link) => Some(Claim::Link(link.key())),
            Command::DeleteLink(key) => Some(Claim::Link(key.clone())),
            _ => None,
        }
    }
}

impl Observed {
    /// Carries out a command of `app`: what it put it now owns, what it deleted nobody does.
    pub fn apply_for(&mut self, app: &str, command: &Command) {
        self.apply(command);
        if let Some(claim) = Claim::of(command) {
            match command {
                Command::DeleteConfig { .. } | Command::DeleteLink(_) => {
                    self.owners.remove(&claim);
                }
                _ => {
                    self.owners.insert(claim, app.to_string());
                }
            }
        }
    }

    /// Whether `app` may put (or delete) what `claim` names: it owns it, or it does not
    /// exist yet and nobody claims it.
    pub fn may_change(&self, claim: &Claim, app: &str) -> Result<(), String> {
        match self.owners.get(claim) {
            Some(owner) if owner == app => Ok(()),
            Some(owner) => Err(format!(
                "{claim} belongs to application {owner}; give this one another name"
            )),
            None if self.exists(claim) => Err(format!(
                "{claim} exists and was not created by application {app} (it was put by hand or before ownership was recorded); give this one another name, or delete it first"
            )),
            None => Ok(()),
        }
    }

    /// Whether `app` owns what `claim` names.
    pub fn owns(&self, claim: &Claim, app: &str) -> bool {
        self.owners.get(claim).is_some_and(|o| o == app)
    }

    fn exists(&self, claim: &Claim) -> bool {
        match claim {
            Claim::Config(name) => self.configs.contains_key(name),
            Claim::Link(key) => self.link(key).is_some(),
        }
    }
}

/// One host.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedHost {
    pub id: String,
    pub friendly_name: String,
    pub labels: Labels,
    /// Components by id.
    pub components: BTreeMap<String, ObservedComponent>,
    /// Providers by id.
    pub providers: BTreeMap<String, ObservedProvider>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedComponent {
    /// The image as it was given to the host.
    pub image: String,
    pub replicas: u32,
    pub annotations: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedProvider {
    pub image: String,
    pub health: ProviderHealth,
    pub annotations: BTreeMap<String, String>,
}

impl From<&HostInventory> for ObservedHost {
    fn from(inv: &HostInventory) -> Self {
        Self {
            id: inv.host_id.clone(),
            friendly_name: inv.friendly_name.clone(),
            labels: inv.labels.clone(),
            components: inv
                .components
                .iter()
                .map(|c| {
                    let observed = ObservedComponent {
                        image: c.image.clone(),
                        replicas: c.replicas,
                        annotations: c.annotations.clone(),
                    };
                    (c.id.clone(), observed)
                })
                .collect(),
            providers: inv
                .providers
                .iter()
                .map(|p| {
                    let observed = ObservedProvider {
                        image: p.image.clone(),
                        health: p.health,
                        annotations: p.annotations.clone(),
                    };
                    (p.id.clone(), observed)
                })
                .collect(),
        }
    }
}

impl ObservedHost {
    /// A host with labels and nothing running.
    pub fn new(id: &str, labels: Labels) -> Self {
        Self {
            id: id.to_string(),
            friendly_name: id.to_string(),
            labels,
            ..Self::default()
        }
    }
}

impl Observed {
    /// A lattice made of these hosts' inventories, with no links or config yet.
    pub fn from_inventories<'a>(inventories: impl IntoIterator<Item = &'a HostInventory>) -> Self {
        Self {
            hosts: inventories
                .into_iter()
                .map(|inv| (inv.host_id.clone(), ObservedHost::from(inv)))
                .collect(),
            ..Self::default()
        }
    }

    pub fn add_host(&mut self, host: ObservedHost) {
        self.hosts.insert(host.id.clone(), host);
    }

    pub fn link(&self, key: &LinkKey) -> Option<&Link> {
        self.links.iter().find(|l| l.key() == *key)
    }

    /// Records a command a host or the lattice store carried out (hosts reply once the
    /// work is done, so the model can follow at once). Commands for unknown hosts change
    /// nothing.
    pub fn apply(&mut self, command: &Command) {
        match command {
            Command::ScaleComponent {
                host_id,
                component_id,
                image,
                replicas,
                annotations,
                ..
            } => {
                let Some(h) = self.hosts.get_mut(host_id) else {
                    return;
                };
                if *replicas == 0 {
                    h.components.remove(component_id);
                    return;
                }
                let entry =
                    h.components
                        .entry(component_id.clone())
                        .or_insert_with(|| ObservedComponent {
                            image: image.clone(),
                            ..Default::default()
                        });
                if !image.is_empty() {
                    entry.image = image.clone();
                }
                entry.replicas = *replicas;
                if !annotations.is_empty() {
                    entry.annotations = annotations.clone();
                }
            }
            Command::StartProvider {
                host_id,
                provider_id,
                image,
                annotations,
                ..
            } => {
                if let Some(h) = self.hosts.get_mut(host_id) {
                    // The host answers a start once the provider answered its health check.
                    h.providers
                        .entry(provider_id.clone())
                        .or_insert_with(|| ObservedProvider {
                            image: image.clone(),
                            health: ProviderHealth::Healthy,
                            annotations: annotations.clone(),
                        });
                }
            }
            Command::StopProvider {
                host_id,
                provider_id,
            } => {
                if let Some(h) = self.hosts.get_mut(host_id) {
                    h.providers.remove(provider_id);
                }
            }
            Command::PutConfig { name, values } => {
                self.configs.insert(name.clone(), values.clone());
            }
            Command::DeleteConfig { name } => {
                self.configs.remove(name);
            }
            Command::PutLink(link) => self.put_link(link.clone()),
            Command::DeleteLink(key) => self.links.retain(|l| l.key() != *key),
        }
    }

    /// Adds a link or replaces the one with the same identity.
    pub fn put_link(&mut self, link: Link) {
        let key = link.key();
        match self.links.iter_mut().find(|l| l.key() == key) {
            Some(existing) => *existing = link,
            None => self.links.push(link),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use trellis_lattice::inventory::{ComponentInfo, ComponentLimits, ProviderInfo};

    #[test]
    fn from_inventory() {
        let inv = HostInventory {
            host_id: "NHOST".into(),
            friendly_name: "calm-otter".into(),
            lattice: "default".into(),
            labels: [("tier".to_string(), "edge".to_string())].into(),
            version: "0.1.0".into(),
            uptime_seconds: 1,
            started_at: Utc::now(),
            components: vec![ComponentInfo {
                id: "greeter".into(),
                image: "file:///g.wasm".into(),
                digest: "sha256:00".into(),
                replicas: 3,
                limits: ComponentLimits {
                    max_memory_bytes: 1,
                    timeout_ms: 1,
                },
                annotations: [("a".to_string(), "b".to_string())].into(),
                imports: vec![],
                exports: vec![],
                started_at: Utc::now(),
            }],
            providers: vec![ProviderInfo {
                id: "kv".into(),
                image: "builtin://keyvalue-nats".into(),
                health: ProviderHealth::Healthy,
                annotations: Default::default(),
                health_message: None,
                started_at: Utc::now(),
            }],
            resources: Default::default(),
            heartbeat_interval_ms: 5000,
            seq: None,
            page: None,
        };
        let observed = Observed::from_inventories([&inv]);
        let host = &observed.hosts["NHOST"];
        assert_eq!(host.friendly_name, "calm-otter");
        assert_eq!(host.labels["tier"], "edge");
        assert_eq!(host.components["greeter"].replicas, 3);
        assert_eq!(host.components["greeter"].annotations["a"], "b");
        assert_eq!(host.providers["kv"].health, ProviderHealth::Healthy);
    }
}
