//! What a host has: its summary (ping), its full inventory (heartbeat, `host get`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::labels::Labels;

/// Limits applied to every instance of a component.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentLimits {
    /// Cap on linear memory (and tables) of one instance, in bytes.
    pub max_memory_bytes: u64,
    /// Wall-clock limit on one invocation, in milliseconds.
    pub timeout_ms: u64,
}

/// One component running on a host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentInfo {
    pub id: String,
    pub image: String,
    /// `sha256:<hex>` of the component's bytes.
    pub digest: String,
    /// Maximum concurrent instances on this host.
    pub replicas: u32,
    pub limits: ComponentLimits,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Interfaces the component imports (`wasi:keyvalue/atomics@0.2.0-draft`, ...).
    #[serde(default)]
    pub imports: Vec<String>,
    /// Interfaces and root functions the component exports.
    #[serde(default)]
    pub exports: Vec<String>,
    pub started_at: DateTime<Utc>,
}

/// Health of a capability provider as last seen by its host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderHealth {
    Starting,
    Healthy,
    Unhealthy,
    /// The provider did not answer its health check in time.
    NoAnswer,
    /// The process exited; the host is restarting it.
    Restarting,
}

/// One capability provider supervised by a host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderInfo {
    pub id: String,
    pub image: String,
    pub health: ProviderHealth,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_message: Option<String>,
    pub started_at: DateTime<Utc>,
}

/// Resource use of the host process.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostResources {
    /// Resident set size of the host process, in bytes (0 where unknown).
    pub rss_bytes: u64,
    /// Invocations currently running on this host.
    pub active_invocations: u64,
}

/// Everything a host runs, sent with every heartbeat and on `host get`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostInventory {
    pub host_id: String,
    pub friendly_name: String,
    pub lattice: String,
    pub labels: Labels,
    pub version: String,
    pub uptime_seconds: u64,
    pub started_at: DateTime<Utc>,
    pub components: Vec<ComponentInfo>,
    #[serde(default)]
    pub providers: Vec<ProviderInfo>,
    #[serde(default)]
    pub resources: HostResources,
    /// How often this host sends heartbeats, in milliseconds.
    pub heartbeat_interval_ms: u64,
}

/// A host's answer to a ping: who it is and how much it runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostSummary {
    pub id: String,
    pub friendly_name: String,
    pub lattice: String,
    pub labels: Labels,
    pub version: String,
    pub uptime_seconds: u64,
    pub started_at: DateTime<Utc>,
    pub component_count: usize,
    pub provider_count: usize,
}

impl HostInventory {
    pub fn summary(&self) -> HostSummary {
        HostSummary {
            id: self.host_id.clone(),
            friendly_name: self.friendly_name.clone(),
            lattice: self.lattice.clone(),
            labels: self.labels.clone(),
            version: self.version.clone(),
            uptime_seconds: self.uptime_seconds,
            started_at: self.started_at,
            component_count: self.components.len(),
            provider_count: self.providers.len(),
        }
    }

    pub fn component(&self, id: &str) -> Option<&ComponentInfo> {
        self.components.iter().find(|c| c.id == id)
    }
}
