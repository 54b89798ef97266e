//! The manager's live view of the lattice: the [`Observed`] model the scalers read, kept
//! current from events, command replies and periodic snapshots, plus when each host was
//! last heard from, to notice hosts that are gone.
//!
//! Hosts reply to a command once it is done, so a successful command is applied to the model
//! at once. A heartbeat or snapshot taken just before the command finished must not undo it,
//! so commands carried out in the last few seconds are applied again on top of every
//! host state the view takes in, with the ownership they gave their app. Likewise a snapshot
//! read from the store before a config or link changed does not undo the change: what events
//! told since the snapshot began is applied again on top of it.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use tokio::time::Instant;
use trellis_lattice::event::{Event, Sequence};
use trellis_lattice::inventory::{HostInventory, ProviderHealth};
use trellis_lattice::link::{Config, Link, LinkKey};

use crate::model::{Claim, Observed, ObservedComponent, ObservedHost, ObservedProvider};
use crate::scaler::Command;

/// Heartbeat interval assumed for a host until its first heartbeat says otherwise.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
/// How long a command carried out is re-applied over incoming host state.
const OVERLAY_WINDOW: Duration = Duration::from_secs(3);
/// Changes told by events kept for the next snapshot to take in (snapshots come far more
/// often; the bound only caps a burst).
const MAX_STATE_CHANGES: usize = 10_000;
/// A host is gone after this many heartbeat intervals without a word.
pub const MISSED_HEARTBEATS: u32 = 3;

/// A provider never goes back to `Starting` (a restart is `Restarting`, a new start follows
/// a stop): an inventory saying so was read before a health event we already took in.
fn keep_later_health(before: &ObservedHost, now: &mut ObservedHost) {
    for (id, p) in now.providers.iter_mut() {
        if p.health != ProviderHealth::Starting {
            continue;
        }
        if let Some(old) = before.providers.get(id) {
            if old.image == p.image && old.health != ProviderHealth::Starting {
                p.health = old.health;
            }
        }
    }
}

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

/// A config or link change told by an event.
#[derive(Clone, Debug)]
enum StateChange {
    Config(String, Option<Config>),
    LinkPut(Link),
    LinkDeleted(LinkKey),
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
    recent: Vec<(Instant, String, Command)>,
    /// Config and link changes told by events, for a snapshot begun before them.
    state_changes: Vec<(Instant, StateChange)>,
    /// Health changes of providers not known yet: a host announces a provider healthy as
    /// soon as it is, which can reach us before the event saying it started.
    early_health: HashMap<(String, String), ProviderHealth>,
    /// The newest event taken in from each host: an inventory read before it is stale.
    latest: HashMap<String, Sequence>,
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
            .retain(|(at, _, _)| now.duration_since(*at) < OVERLAY_WINDOW);
        self.recent.push((now, app.to_string(), command));
    }

    fn overlay(&mut self, host: Option<&str>, lattice_wide: bool) {
        let now = Instant::now();
        self.recent
            .retain(|(at, _, _)| now.duration_since(*at) < OVERLAY_WINDOW);
        for (_, app, c) in &self.recent {
            let replay = match c.host_id() {
                Some(h) => host.is_none_or(|want| want == h),
                None => lattice_wide,
            };
            if replay {
                self.observed.apply_for(app, c);
            }
        }
    }

    fn state_changed(&mut self, change: StateChange) {
        if self.state_changes.len() >= MAX_STATE_CHANGES {
            self.state_changes.remove(0);
        }
        self.state_changes.push((Instant::now(), change));
    }

    /// Applies again what events told since `started` (when the snapshot began reading);
    /// what came before is in the snapshot, and forgotten.
    fn replay_state_changes(&mut self, started: Option<Instant>) {
        let Some(started) = started else {
            self.state_changes.clear();
            return;
        };
        self.state_changes.retain(|(at, _)| *at >= started);
        for (_, change) in &self.state_changes {
            match change {
                StateChange::Config(name, Some(v)) => {
                    self.observed.configs.insert(name.clone(), v.clone());
                }
                StateChange::Config(name, None) => {
                    self.observed.configs.remove(name);
                }
                StateChange::LinkPut(link) => self.observed.put_link(link.clone()),
                StateChange::LinkDeleted(key) => self.observed.links.retain(|l| l.key() != *key),
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
        if self.observed.unreachable.remove(host_id).is_some() {
            // It may have restarted while away, with a clock behind its last run (a board
            // without a real-time clock): its old sequence would make every new inventory
            // look stale.
            self.latest.remove(host_id);
            tracing::info!(host_id, "host is reachable again");
        }
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
        if let (Some(read), Some(latest)) = (inv.seq, self.latest.get(&inv.host_id)) {
            if read < *latest {
                // Read before an event we already took in: what it says is old news.
                tracing::trace!(host_id = %inv.host_id, ?read, ?latest, "view: stale inventory left out");
                return false;
            }
        }
        let before = self.observed.hosts.get(&inv.host_id).cloned();
        let mut now = ObservedHost::from(inv);
        if let Some(before) = &before {
            keep_later_health(before, &mut now);
        }
        tracing::trace!(host_id = %inv.host_id, seq = ?inv.seq, providers = ?now.providers.iter().map(|(id, p)| (id, p.health)).collect::<Vec<_>>(), "view: inventory");
        self.observed.add_host(now);
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
        self.replay_state_changes(snap.started);
        self.overlay(None, true);
        before != self.observed
    }

    /// Takes in one lattice event; true when the model changed in a way scalers may care about.
    /// Takes in an event from `source`; `seq` says where it stands among that source's events,
    /// so an inventory read before it is not taken for news.
    pub fn event(&mut self, source: &str, seq: Option<Sequence>, event: &Event) -> bool {
        if self.liveness.contains_key(source) {
            self.seen(source, None);
        }
        let changed = self.apply_event(event);
        tracing::trace!(
            source,
            ?seq,
            event = event.event_type(),
            changed,
            "view: event"
        );
        if let Some(seq) = seq {
            let latest = self.latest.entry(source.to_string()).or_default();
            *latest = (*latest).max(seq);
        }
        changed
    }

    fn apply_event(&mut self, event: &Event) -> bool {
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
                self.state_changed(StateChange::LinkPut(l.link.clone()));
                if self.observed.link(&l.link.key()) == Some(&l.link) {
                    return false;
                }
                self.observed.put_link(l.link.clone());
                true
            }
            Event::LinkDeleted(l) => {
                self.state_changed(StateChange::LinkDeleted(l.key.clone()));
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
        self.state_changed(StateChange::Config(name.to_string(), value.clone()));
        let before = self.observed.configs.get(name).cloned();
        match value {
            Some(v) => self.observed.configs.insert(name.to_string(), v),
            None => self.observed.configs.remove(name),
        };
        before != self.observed.configs.get(name).cloned()
    }

    /// A known host stopped answering without saying goodbye: it is kept, with what it last
    /// ran, as unreachable (see [`Observed::unreachable`]); true the first time.
    pub fn mark_unreachable(&mut self, id: &str) -> bool {
        if !self.observed.hosts.contains_key(id) || self.observed.unreachable.contains_key(id) {
            return false;
        }
        self.observed
            .unreachable
            .insert(id.to_string(), Instant::now());
        true
    }

    /// Hosts unreachable for longer than `after`: decommissioned without a goodbye.
    pub fn long_unreachable(&self, now: Instant, after: Duration) -> Vec<String> {
        self.observed
            .unreachable
            .iter()
            .filter(|(_, since)| now.duration_since(**since) > after)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Removes a host (stopped, or gone silent); true when it was known.
    pub fn remove_host(&mut self, id: &str) -> bool {
        self.observed.unreachable.remove(id);
        self.latest.remove(id);
        self.liveness.remove(id);
        self.gone.insert(id.to_string(), Instant::now());
        self.observed.hosts.remove(id).is_some()
    }

    /// How long ago each known host was last heard from.
    pub fn heartbeat_ages(&self, now: Instant) -> impl Iterator<Item = (&str, Duration)> {
        self.liveness
            .iter()
            .map(move |(id, l)| (id.as_str(), now.duration_since(l.last_seen)))
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
mod tests;
