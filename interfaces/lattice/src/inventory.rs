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
    /// Guest memory all instances may hold together, and what they hold now.
    #[serde(default)]
    pub memory_budget_bytes: u64,
    #[serde(default)]
    pub memory_in_use_bytes: u64,
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
    /// Where the host's events stood when this was read (see [`crate::event::Sequence`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<crate::event::Sequence>,
    /// Set when this is one page of an inventory too large for one message: the components
    /// and providers listed are only this page's (fetch the others with `host.get`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<InventoryPage>,
}

/// Which page of an inventory a message holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryPage {
    /// From 0.
    pub index: u32,
    pub count: u32,
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

    /// Whether this lists only part of what the host runs.
    pub fn is_partial(&self) -> bool {
        self.page.is_some_and(|p| p.count > 1)
    }

    /// Page `index` of this inventory such that each page encodes to at most `max_bytes` of
    /// JSON: the whole inventory (`page: None`) when it fits, else the components and providers
    /// split over pages that each carry everything else. `None` when there is no such page.
    pub fn paged(&self, index: u32, max_bytes: usize) -> Option<HostInventory> {
        let size = |v: &HostInventory| serde_json::to_vec(v).map_or(usize::MAX, |b| b.len());
        if index == 0 && size(self) <= max_bytes {
            return Some(self.clone());
        }
        let mut base = self.clone();
        base.components.clear();
        base.providers.clear();
        base.page = Some(InventoryPage {
            index: u32::MAX,
            count: u32::MAX,
        });
        let room = max_bytes.saturating_sub(size(&base)).max(1);
        // Greedy pages; an item larger than a page gets a page of its own.
        let mut pages: Vec<(Vec<ComponentInfo>, Vec<ProviderInfo>)> = vec![Default::default()];
        let mut used = 0usize;
        let next_page = |used: &mut usize, bytes: usize, pages: &mut Vec<_>| {
            if *used > 0 && *used + bytes > room {
                pages.push(Default::default());
                *used = 0;
            }
            *used += bytes + 1;
        };
        for c in &self.components {
            next_page(
                &mut used,
                serde_json::to_vec(c).map_or(room, |b| b.len()),
                &mut pages,
            );
            if let Some(last) = pages.last_mut() {
                last.0.push(c.clone());
            }
        }
        for p in &self.providers {
            next_page(
                &mut used,
                serde_json::to_vec(p).map_or(room, |b| b.len()),
                &mut pages,
            );
            if let Some(last) = pages.last_mut() {
                last.1.push(p.clone());
            }
        }
        let count = pages.len() as u32;
        let (components, providers) = pages.into_iter().nth(index as usize)?;
        Some(HostInventory {
            components,
            providers,
            page: Some(InventoryPage { index, count }),
            ..base
        })
    }

    /// Puts pages of one inventory back together (in any order); the first page's host facts
    /// are kept.
    pub fn merge(pages: Vec<HostInventory>) -> Option<HostInventory> {
        let mut pages = pages;
        pages.sort_by_key(|p| p.page.map_or(0, |p| p.index));
        let mut iter = pages.into_iter();
        let mut whole = iter.next()?;
        for p in iter {
            whole.components.extend(p.components);
            whole.providers.extend(p.providers);
        }
        whole.page = None;
        Some(whole)
    }

    pub fn component(&self, id: &str) -> Option<&ComponentInfo> {
        self.components.iter().find(|c| c.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inventory(components: usize, annotation_bytes: usize) -> HostInventory {
        HostInventory {
            host_id: "NHOST".into(),
            friendly_name: "h".into(),
            lattice: "l".into(),
            labels: Labels::new(),
            version: "0".into(),
            uptime_seconds: 1,
            started_at: Utc::now(),
            components: (0..components)
                .map(|i| ComponentInfo {
                    id: format!("c{i}"),
                    image: "/c.wasm".into(),
                    digest: "sha256:0".into(),
                    replicas: 1,
                    limits: ComponentLimits {
                        max_memory_bytes: 1,
                        timeout_ms: 1,
                    },
                    annotations: [("a".to_string(), "x".repeat(annotation_bytes))].into(),
                    imports: vec![],
                    exports: vec![],
                    started_at: Utc::now(),
                })
                .collect(),
            providers: vec![],
            resources: HostResources::default(),
            heartbeat_interval_ms: 1000,
            seq: None,
            page: None,
        }
    }

    #[test]
    fn a_small_inventory_is_one_message() {
        let inv = inventory(3, 10);
        assert_eq!(inv.paged(0, 1 << 20), Some(inv.clone()));
        assert_eq!(inv.paged(1, 1 << 20), None);
    }

    #[test]
    fn a_large_inventory_is_split_into_pages_that_fit_and_merge_back() {
        let inv = inventory(40, 600 << 10 >> 5);
        let max = 64 << 10;
        assert!(serde_json::to_vec(&inv).unwrap().len() > max);
        let first = inv.paged(0, max).unwrap();
        assert!(first.is_partial());
        let count = first.page.unwrap().count;
        let pages: Vec<HostInventory> = (0..count).map(|i| inv.paged(i, max).unwrap()).collect();
        for p in &pages {
            assert!(serde_json::to_vec(p).unwrap().len() <= max, "a page fits");
        }
        assert!(inv.paged(count, max).is_none());
        let whole = HostInventory::merge(pages.into_iter().rev().collect()).unwrap();
        assert_eq!(whole, inv);
    }
}
