//! The manager's live view of the lattice: the [`Observed`] model the scalers read, kept
//! current from events, command replies and periodic snapshots, plus when each host was
//! last heard from, to notice hosts that are gone.
//!
//! Hosts reply to a command once it is done, so a successful command is applied to the model
//! at once. A heartbeat or snapshot taken just before the command finished must not undo it,
//! so commands carried out in the last few seconds are applied again on top of every
//! host state the view takes in.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use tokio::time::Instant;
use trellis_lattice::event::Event;
use trellis_lattice::inventory::{HostInventory, ProviderHealth};
use trellis_lattice::link::{Config, Link};

use crate::model::{Claim, Observed, ObservedComponent, ObservedHost, ObservedProvider};
use crate::scaler::Command;

/// Heartbeat interval assumed for a host until its first heartbeat says otherwise.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
/// How long a command carried out is re-applied over incoming host state.
const OVERLAY_WINDOW: Duration = Duration::from_secs(3);
/// A host is gone after this many heartbeat intervals without a word.
pub const MISSED_HEARTBEATS: u32 = 3;

/// Early health changes kept at most (see [`LatticeView::early_health`]).
const MAX_EARLY_HEALTH: usize = 4096;

/// When a host was last heard from.
#[derive(Clone, Debug)]
struct Liveness {
    last_seen: Instant,
    interval: Duration,
    probing: bool,
    last_probe: Option<Instant>,
}

impl Liveness {
    fn new(interval: Duration) -> Self {
        Self {
            last_seen: Instant::now(),
            interval,
            probing: false,
            last_probe: None,
        }
    }
}

/// Everything taken in from one snapshot of the lattice.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub started: Option<Instant>,
    pub inventories: Vec<HostInventory>,
    pub links: Option<Vec<Link>>,
    pub configs: Option<BTreeMap<String, Config>>,
    pub owners: Option<BTreeMap<Claim, String>>,
}

#[derive(Default)]
pub struct LatticeView {
    observed: Observed,
    liveness: HashMap<String, Liveness>,
    /// Hosts declared gone, and when: a snapshot begun before then does not bring them back.
    gone: HashMap<String, Instant>,
    recent: Vec<(Instant, Command)>,
    /// Health changes of providers not known yet: a host announces a provider healthy as
    /// soon as it is, which can reach us before the event saying it started.
    early_health: HashMap<(String, String), ProviderHealth>,
}

/// A command's target on a host, if it has one.
fn command_host(c: &Command) -> Option<&str> {
    match c {
        Command::ScaleComponent { host_id, .. }
        | Command::StartProvider { host_id, .. }
        | Command::StopProvider { host_id, .. } => Some(host_id),
        _ => None,
    }
}

impl LatticeView {
    pub fn observed(&self) -> &Observed {
        &self.observed
    }

    pub fn has_host(&self, id: &str) -> bool {
        self.observed.hosts.contains_key(id)
    }

    /// The longest heartbeat interval of the known hosts.
    pub fn max_interval(&self) -> Option<Duration> {
        self.liveness.values().map(|l| l.interval).max()
    }

    /// A command of `app` succeeded: the model follows at once, and keeps it over older host
    /// state; what the app put it now owns, what it deleted nobody does.
    pub fn applied(&mut self, app: &str, command: Command) {
        self.observed.apply_for(app, &command);
        let now = Instant::now();
        self.recent
            .retain(|(at, _)| now.duration_since(*at) < OVERLAY_WINDOW);
        self.recent.push((now, command));
    }

    fn overlay(&mut self, host: Option<&str>, lattice_wide: bool) {
        let now = Instant::now();
        self.recent
            .retain(|(at, _)| now.duration_since(*at) < OVERLAY_WINDOW);
        for (_, c) in &self.recent {
            let replay = match command_host(c) {
                Some(h) => host.is_none_or(|want| want == h),
                None => lattice_wide,
            };
            if replay {
                self.observed.apply(c);
            }
        }
    }

    fn seen(&mut self, host_id: &str, interval: Option<Duration>) {
        let l = self
            .liveness
            .entry(host_id.to_string())
            .or_insert_with(|| Liveness::new(interval.unwrap_or(DEFAULT_INTERVAL)));
        l.last_seen = Instant::now();
        l.probing = false;
        if let Some(i) = interval {
            l.interval = i;
        }
        self.gone.remove(host_id);
    }

    /// Takes in a host's full inventory (heartbeat, probe answer); true when the model changed.
    /// One page of a larger inventory only says the host is alive: the caller reads the
    /// whole (see `HostInventory::is_partial`).
    pub fn inventory(&mut self, inv: &HostInventory) -> bool {
        let interval = Duration::from_millis(inv.heartbeat_interval_ms.max(1));
        self.seen(&inv.host_id, Some(interval));
        if inv.is_partial() {
            return false;
        }
        let before = self.observed.hosts.get(&inv.host_id).cloned();
        self.observed.add_host(ObservedHost::from(inv));
        self.overlay(Some(&inv.host_id), false);
        before.as_ref() != self.observed.hosts.get(&inv.host_id)
    }

    /// Takes in a snapshot of the lattice; hosts declared gone after it began stay gone, and
    /// hosts missing from it are left to the liveness check.
    pub fn snapshot(&mut self, snap: Snapshot) -> bool {
        let before = self.observed.clone();
        for inv in &snap.inventories {
            let gone_since_start = match (self.gone.get(&inv.host_id), snap.started) {
                (Some(gone_at), Some(started)) => *gone_at >= started,
                _ => false,
            };
            if gone_since_start {
                continue;
            }
            self.inventory(inv);
        }
        if let Some(links) = snap.links {
            self.observed.links = links;
        }
        if let Some(configs) = snap.configs {
            self.observed.configs = configs;
        }
        if let Some(owners) = snap.owners {
            self.observed.owners = owners;
        }
        self.overlay(None, true);
        before != self.observed
    }

    /// Takes in one lattice event; true when the model changed in a way scalers may care about.
    pub fn event(&mut self, source: &str, event: &Event) -> bool {
        if self.liveness.contains_key(source) {
            self.seen(source, None);
        }
        match event {
            Event::HostHeartbeat(inv) => self.inventory(inv),
            Event::HostStarted(h) => {
                self.seen(&h.host_id, None);
                let host = self
                    .observed
                    .hosts
                    .entry(h.host_id.clone())
                    .or_insert_with(|| ObservedHost::new(&h.host_id, h.labels.clone()));
                host.friendly_name = h.friendly_name.clone();
                host.labels = h.labels.clone();
                if !h.reconnected {
                    // A fresh process runs nothing yet, whatever an earlier one with this id ran.
                    host.components.clear();
                    host.providers.clear();
                }
                true
            }
            Event::HostStopped(h) => self.remove_host(&h.host_id),
            Event::LabelsChanged(l) => match self.observed.hosts.get_mut(&l.host_id) {
                Some(h) if h.labels != l.labels => {
                    h.labels = l.labels.clone();
                    true
                }
                _ => false,
            },
            Event::ComponentScaled(c) => {
                let Some(h) = self.observed.hosts.get_mut(&c.host_id) else {
                    return false;
                };
                if c.replicas == 0 {
                    h.components.remove(&c.component_id).is_some()
                } else {
                    let next = ObservedComponent {
                        image: c.image.clone(),
                        replicas: c.replicas,
                        annotations: c.annotations.clone(),
                    };
                    h.components.insert(c.component_id.clone(), next.clone()) != Some(next)
                }
            }
            Event::ComponentScaleFailed(_) => true,
            Event::ProviderStarted(p) => {
                let early = self
                    .early_health
                    .remove(&(p.host_id.clone(), p.provider_id.clone()));
                let Some(h) = self.observed.hosts.get_mut(&p.host_id) else {
                    return false;
                };
                let entry =
                    h.providers
                        .entry(p.provider_id.clone())
                        .or_insert_with(|| ObservedProvider {
                            image: p.image.clone(),
                            health: early.unwrap_or(ProviderHealth::Starting),
                            annotations: p.annotations.clone(),
                        });
                entry.image = p.image.clone();
                entry.annotations = p.annotations.clone();
                true
            }
            Event::ProviderStopped(p) => {
                self.early_health
                    .remove(&(p.host_id.clone(), p.provider_id.clone()));
                self.observed
                    .hosts
                    .get_mut(&p.host_id)
                    .is_some_and(|h| h.providers.remove(&p.provider_id).is_some())
            }
            Event::ProviderStartFailed(_) => true,
            Event::ProviderHealthChanged(p) => {
                match self
                    .observed
                    .hosts
                    .get_mut(&p.host_id)
                    .and_then(|h| h.providers.get_mut(&p.provider_id))
                {
                    Some(prov) if prov.health != p.health => {
                        prov.health = p.health;
                        true
                    }
                    Some(_) => false,
                    None => {
                        if self.observed.hosts.contains_key(&p.host_id) {
                            // Bounded by the providers a host may start.
                            if self.early_health.len() >= MAX_EARLY_HEALTH {
                                self.early_health.clear();
                            }
                            self.early_health
                                .insert((p.host_id.clone(), p.provider_id.clone()), p.health);
                        }
                        false
                    }
                }
            }
            Event::LinkSet(l) => {
                if self.observed.link(&l.link.key()) == Some(&l.link) {
                    return false;
                }
                self.observed.put_link(l.link.clone());
                true
            }
            Event::LinkDeleted(l) => {
                let before = self.observed.links.len();
                self.observed.links.retain(|x| x.key() != l.key);
                before != self.observed.links.len()
            }
            // Config events carry keys only; the caller reads the values (see `config`).
            Event::ConfigSet(_) | Event::ConfigDeleted(_) => false,
            Event::AppStatus(_) | Event::Other { .. } => false,
        }
    }

    /// The current value of a named config (read after a config event).
    pub fn config(&mut self, name: &str, value: Option<Config>) -> bool {
        let before = self.observed.configs.get(name).cloned();
        match value {
            Some(v) => self.observed.configs.insert(name.to_string(), v),
            None => self.observed.configs.remove(name),
        };
        before != self.observed.configs.get(name).cloned()
    }

    /// Removes a host (stopped, or gone silent); true when it was known.
    pub fn remove_host(&mut self, id: &str) -> bool {
        self.liveness.remove(id);
        self.gone.insert(id.to_string(), Instant::now());
        self.observed.hosts.remove(id).is_some()
    }

    /// Hosts silent for [`MISSED_HEARTBEATS`] intervals.
    pub fn expired(&self, now: Instant) -> Vec<String> {
        self.liveness
            .iter()
            .filter(|(_, l)| now.duration_since(l.last_seen) > l.interval * MISSED_HEARTBEATS)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Hosts whose heartbeat is late, to ask directly whether they are still there (a host
    /// that died has no subscription left, so NATS answers "no responders" at once), with
    /// the time to wait for an answer. Marks them as being probed.
    pub fn to_probe(&mut self, now: Instant) -> Vec<(String, Duration)> {
        let mut out = Vec::new();
        for (id, l) in &mut self.liveness {
            let late = l.interval + l.interval / 4 + Duration::from_millis(100);
            let again = l.interval / 2;
            if !l.probing
                && now.duration_since(l.last_seen) > late
                && l.last_probe.is_none_or(|p| now.duration_since(p) > again)
            {
                l.probing = true;
                l.last_probe = Some(now);
                out.push((
                    id.clone(),
                    l.interval
                        .clamp(Duration::from_millis(200), Duration::from_secs(2)),
                ));
            }
        }
        out
    }

    /// A probe came back without an answer (timed out): probe again later.
    pub fn probe_unanswered(&mut self, id: &str) {
        if let Some(l) = self.liveness.get_mut(id) {
            l.probing = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use trellis_lattice::event::{HostStarted, LabelsChanged};

    fn inv(id: &str, components: &[(&str, u32)]) -> HostInventory {
        HostInventory {
            host_id: id.into(),
            friendly_name: id.into(),
            lattice: "t".into(),
            labels: Default::default(),
            version: "0".into(),
            uptime_seconds: 0,
            started_at: Utc::now(),
            components: components
                .iter()
                .map(|(c, n)| trellis_lattice::inventory::ComponentInfo {
                    id: c.to_string(),
                    image: "file:///c.wasm".into(),
                    digest: String::new(),
                    replicas: *n,
                    limits: trellis_lattice::inventory::ComponentLimits {
                        max_memory_bytes: 1,
                        timeout_ms: 1,
                    },
                    annotations: Default::default(),
                    imports: vec![],
                    exports: vec![],
                    started_at: Utc::now(),
                })
                .collect(),
            providers: vec![],
            resources: Default::default(),
            heartbeat_interval_ms: 500,
            page: None,
        }
    }

    #[tokio::test]
    async fn a_stale_heartbeat_does_not_undo_a_command() {
        let mut v = LatticeView::default();
        v.inventory(&inv("H", &[]));
        v.applied(
            "app",
            Command::ScaleComponent {
                host_id: "H".into(),
                component_id: "c".into(),
                image: "file:///c.wasm".into(),
                replicas: 2,
                config: Vec::new(),
                annotations: Default::default(),
            },
        );
        // A heartbeat taken before the command finished.
        v.inventory(&inv("H", &[]));
        assert_eq!(v.observed().hosts["H"].components["c"].replicas, 2);
        // A later heartbeat that agrees changes nothing.
        assert!(!v.inventory(&inv("H", &[("c", 2)])));
    }

    #[tokio::test(start_paused = true)]
    async fn silent_hosts_are_probed_then_expire() {
        let mut v = LatticeView::default();
        v.inventory(&inv("H", &[]));
        let now = Instant::now();
        assert!(v.to_probe(now).is_empty());
        let later = now + Duration::from_millis(800);
        assert_eq!(v.to_probe(later).len(), 1);
        assert!(v.to_probe(later).is_empty(), "one probe at a time");
        assert!(v.expired(later).is_empty());
        assert_eq!(v.expired(now + Duration::from_millis(1600)), vec!["H"]);
        assert!(v.remove_host("H"));
        // A snapshot begun before the host was declared gone does not bring it back.
        let snap = Snapshot {
            started: Some(now),
            inventories: vec![inv("H", &[])],
            ..Default::default()
        };
        v.snapshot(snap);
        assert!(!v.has_host("H"));
    }

    #[tokio::test]
    async fn label_changes_and_restarts() {
        let mut v = LatticeView::default();
        v.inventory(&inv("H", &[("c", 1)]));
        let ev = Event::LabelsChanged(LabelsChanged {
            host_id: "H".into(),
            labels: [("tier".to_string(), "edge".to_string())].into(),
        });
        assert!(v.event("H", &ev));
        assert!(!v.event("H", &ev));
        let restarted = Event::HostStarted(HostStarted {
            host_id: "H".into(),
            friendly_name: "h".into(),
            labels: Default::default(),
            version: "0".into(),
            reconnected: false,
        });
        v.event("H", &restarted);
        assert!(v.observed().hosts["H"].components.is_empty());
    }

    /// The host announces a provider healthy as soon as it is, which can arrive before the
    /// event saying it started: the provider must not stay "starting" until a heartbeat.
    #[tokio::test]
    async fn health_announced_before_the_start_is_kept() {
        let mut v = LatticeView::default();
        v.inventory(&inv("H", &[]));
        let healthy = Event::ProviderHealthChanged(trellis_lattice::event::ProviderHealthChanged {
            host_id: "H".into(),
            provider_id: "kv".into(),
            health: ProviderHealth::Healthy,
            message: None,
        });
        let started = Event::ProviderStarted(trellis_lattice::event::ProviderStarted {
            host_id: "H".into(),
            provider_id: "kv".into(),
            image: "file:///kv".into(),
            annotations: Default::default(),
        });
        assert!(!v.event("H", &healthy));
        assert!(v.event("H", &started));
        assert_eq!(
            v.observed().hosts["H"].providers["kv"].health,
            ProviderHealth::Healthy
        );
        // In the usual order the start comes first and the health follows.
        let mut v = LatticeView::default();
        v.inventory(&inv("H", &[]));
        v.event("H", &started);
        assert_eq!(
            v.observed().hosts["H"].providers["kv"].health,
            ProviderHealth::Starting
        );
        assert!(v.event("H", &healthy));
        assert_eq!(
            v.observed().hosts["H"].providers["kv"].health,
            ProviderHealth::Healthy
        );
    }
}
