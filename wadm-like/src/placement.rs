//! Where replicas go: the arithmetic (weights, even spreading) and which hosts are eligible.
//!
//! A host is eligible for a component when its labels match the spread's requirements and,
//! for every link of the component whose target is placed by a daemonscaler, the host is one
//! where that target runs: such capabilities (GPIO pins, a local sensor) are per host, so the
//! component must be next to one. A target placed by a spreadscaler is reachable over the
//! lattice from anywhere, so it constrains nothing, but when it can run nowhere the linking
//! component cannot work either and says so.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

use trellis_lattice::labels::{self, Labels};
use trellis_lattice::manifest::{ComponentSpec, Manifest, SpreadScaler, Trait};

use crate::model::Observed;

/// Splits `total` by `weights` with the largest-remainder method: every part is the floor of
/// its exact quota, and the units left over go to the largest fractional remainders (the
/// earlier part on ties). The parts always sum to `total`; all-zero weights get nothing.
pub fn apportion(total: u32, weights: &[u32]) -> Vec<u32> {
    let sum: u64 = weights.iter().map(|w| u64::from(*w)).sum();
    if sum == 0 {
        return vec![0; weights.len()];
    }
    let total64 = u64::from(total);
    let mut parts: Vec<u32> = Vec::with_capacity(weights.len());
    let mut remainders: Vec<(u64, usize)> = Vec::with_capacity(weights.len());
    for (i, w) in weights.iter().enumerate() {
        let exact = total64 * u64::from(*w);
        // exact / sum <= total, so it fits in u32.
        parts.push(u32::try_from(exact / sum).unwrap_or(u32::MAX));
        remainders.push((exact % sum, i));
    }
    let given: u32 = parts.iter().sum();
    remainders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for (_, i) in remainders.into_iter().take((total - given) as usize) {
        parts[i] += 1;
    }
    parts
}

/// Spreads `n` replicas over `hosts` so counts differ by at most one. The hosts that get one
/// more are those already running the most (`current`), then by id: a pass over a lattice
/// that already matches moves nothing. With `per_host_cap` no host gets more than the cap,
/// and what does not fit is returned as unplaced.
pub fn spread_evenly(
    n: u32,
    hosts: &[String],
    current: &BTreeMap<String, u32>,
    per_host_cap: Option<u32>,
) -> (BTreeMap<String, u32>, u32) {
    spread_evenly_salted(n, hosts, current, per_host_cap, "")
}

/// [`spread_evenly`] with ties between hosts running equally many broken by a stable hash of
/// `salt` (the component id) and the host id instead of the id alone, so components that
/// each leave some hosts without a replica do not all leave the same ones. An empty salt
/// keeps id order.
pub fn spread_evenly_salted(
    n: u32,
    hosts: &[String],
    current: &BTreeMap<String, u32>,
    per_host_cap: Option<u32>,
    salt: &str,
) -> (BTreeMap<String, u32>, u32) {
    let mut placed = BTreeMap::new();
    let m = u32::try_from(hosts.len()).unwrap_or(u32::MAX);
    if m == 0 || n == 0 {
        return (placed, n);
    }
    let fits = per_host_cap.map_or(n, |cap| n.min(cap.saturating_mul(m)));
    let base = fits / m;
    let extra = (fits % m) as usize;
    // Each host's key is computed once: a comparison that looked it up (a map search by
    // host id and a hash) made this sort most of a pass over thousands of hosts. Only which
    // hosts are among the first `extra` matters, not their order, so a selection will do.
    let mut order: Vec<(Reverse<u32>, u64, &String)> = hosts
        .iter()
        .map(|h| {
            let have = current.get(h).copied().unwrap_or(0);
            let rank = if salt.is_empty() { 0 } else { fnv1a(salt, h) };
            (Reverse(have), rank, h)
        })
        .collect();
    if extra > 0 && extra < order.len() {
        order.select_nth_unstable(extra - 1);
    }
    for (i, (_, _, h)) in order.into_iter().enumerate() {
        let count = base + u32::from(i < extra);
        if count > 0 {
            placed.insert(h.clone(), count);
        }
    }
    (placed, n - fits)
}

/// FNV-1a over `salt`, a separator and `host`: stable across builds and machines, so every
/// manager instance breaks ties the same way.
fn fnv1a(salt: &str, host: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in salt.bytes().chain([0u8]).chain(host.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Where one spread of a spreadscaler puts its share.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpreadPlacement {
    /// The spread name (`default` for a scaler without spreads).
    pub name: String,
    /// Its share of the instances by weight.
    pub share: u32,
    pub hosts: BTreeMap<String, u32>,
    /// Replicas of the share that fit nowhere.
    pub unplaced: u32,
    /// Why replicas are unplaced.
    pub reason: Option<String>,
}

/// A host constraint from a link to a target that runs per host.
#[derive(Clone, Debug)]
struct LocalNeed {
    /// `namespace:package` of the link, the name users know the capability by.
    package: String,
    /// Hosts where the target runs.
    hosts: BTreeSet<String>,
}

/// Eligibility of hosts for the components of one manifest on one observed lattice.
pub struct Placer<'a> {
    manifest: &'a Manifest,
    observed: &'a Observed,
}

impl<'a> Placer<'a> {
    pub fn new(manifest: &'a Manifest, observed: &'a Observed) -> Self {
        Self { manifest, observed }
    }

    /// Places a spreadscaler: instances divided over spreads by weight, then evenly over each
    /// spread's eligible hosts. `current` holds the replicas the app already runs per host.
    /// `per_host_cap` is `Some(1)` for providers, which run once per host; a host taken by
    /// one spread is then not offered to the next.
    pub fn place_spread(
        &self,
        component: &ComponentSpec,
        scaler: &SpreadScaler,
        current: &BTreeMap<String, u32>,
        per_host_cap: Option<u32>,
    ) -> Vec<SpreadPlacement> {
        let implicit = [trellis_lattice::manifest::Spread {
            name: "default".into(),
            ..Default::default()
        }];
        let spreads = if scaler.spread.is_empty() {
            &implicit[..]
        } else {
            &scaler.spread[..]
        };
        let weights: Vec<u32> = spreads.iter().map(|s| s.weight()).collect();
        let shares = apportion(scaler.instances, &weights);
        let needs = self.local_needs(component, &mut BTreeSet::new());
        let mut taken: BTreeSet<String> = BTreeSet::new();
        let mut out = Vec::new();
        for (spread, share) in spreads.iter().zip(shares) {
            let hosts: Vec<String> = self
                .eligible(&spread.requirements, &needs)
                .into_iter()
                .filter(|h| per_host_cap.is_none() || !taken.contains(h))
                .collect();
            let salt = self.manifest.component_id(component);
            let (placed, unplaced) =
                spread_evenly_salted(share, &hosts, current, per_host_cap, &salt);
            let reason = (unplaced > 0).then(|| {
                if hosts.is_empty() {
                    self.explain(Some(&spread.name), &spread.requirements, &needs)
                } else {
                    format!(
                        "spread {}: {share} wanted but only {} eligible hosts, and a capability runs once per host",
                        spread.name,
                        hosts.len()
                    )
                }
            });
            if per_host_cap.is_some() {
                taken.extend(placed.keys().cloned());
            }
            out.push(SpreadPlacement {
                name: spread.name.clone(),
                share,
                hosts: placed,
                unplaced,
                reason,
            });
        }
        out
    }

    /// The hosts a daemonscaled component runs on (matching any spread's requirements, or
    /// every host without spreads, and next to the per-host targets it links to), or why
    /// there are none.
    pub fn daemon_hosts(&self, component: &ComponentSpec) -> Result<BTreeSet<String>, String> {
        let Some(Trait::DaemonScaler(d)) = component.scaler() else {
            return Err(format!("{} has no daemonscaler", component.name));
        };
        if d.instances == 0 {
            // Scaled to zero on purpose: nowhere is the right answer.
            return Ok(BTreeSet::new());
        }
        let hosts = self.daemon_hosts_inner(component, &mut BTreeSet::new());
        if !hosts.is_empty() {
            return Ok(hosts);
        }
        let needs = self.local_needs(component, &mut BTreeSet::new());
        if d.spread.is_empty() {
            return Err(self.explain(None, &Labels::new(), &needs));
        }
        let reasons: Vec<String> = d
            .spread
            .iter()
            .map(|s| self.explain(Some(&s.name), &s.requirements, &needs))
            .collect();
        Err(reasons.join("; "))
    }

    /// Problems with links to targets placed by a spreadscaler: reachable from anywhere, but
    /// useless when they can run nowhere.
    pub fn link_problems(&self, component: &ComponentSpec) -> Vec<String> {
        let mut problems = Vec::new();
        for (_, link) in component.links() {
            let Some(target) = self.manifest.component(&link.target.name) else {
                continue;
            };
            let Some(Trait::SpreadScaler(s)) = target.scaler() else {
                continue;
            };
            let package = link.wit_package();
            if s.instances == 0 {
                problems.push(format!(
                    "link target {} ({package}) is scaled to 0 instances",
                    target.name
                ));
                continue;
            }
            let needs = self.local_needs(target, &mut BTreeSet::from([component.name.clone()]));
            let spreads: Vec<&Labels> = if s.spread.is_empty() {
                vec![]
            } else {
                s.spread.iter().map(|s| &s.requirements).collect()
            };
            let anywhere = if spreads.is_empty() {
                !self.eligible(&Labels::new(), &needs).is_empty()
            } else {
                spreads.iter().any(|r| !self.eligible(r, &needs).is_empty())
            };
            if !anywhere {
                problems.push(format!(
                    "link target {} ({package}) has no eligible host",
                    target.name
                ));
            }
        }
        problems
    }

    /// Hosts matching `requirements` and every local need, sorted by id.
    fn eligible(&self, requirements: &Labels, needs: &[LocalNeed]) -> Vec<String> {
        self.observed
            .hosts
            .values()
            .filter(|h| labels::matches(&h.labels, requirements))
            .filter(|h| needs.iter().all(|n| n.hosts.contains(&h.id)))
            .map(|h| h.id.clone())
            .collect()
    }

    /// What links to daemonscaled targets demand of a component's hosts. `visiting` breaks
    /// cycles of links (a cycle constrains nothing further).
    fn local_needs(
        &self,
        component: &ComponentSpec,
        visiting: &mut BTreeSet<String>,
    ) -> Vec<LocalNeed> {
        visiting.insert(component.name.clone());
        let mut needs = Vec::new();
        for (_, link) in component.links() {
            let Some(target) = self.manifest.component(&link.target.name) else {
                continue;
            };
            if visiting.contains(&target.name)
                || !matches!(target.scaler(), Some(Trait::DaemonScaler(_)))
            {
                continue;
            }
            needs.push(LocalNeed {
                package: link.wit_package(),
                hosts: self.daemon_hosts_inner(target, visiting),
            });
        }
        visiting.remove(&component.name);
        needs
    }

    fn daemon_hosts_inner(
        &self,
        component: &ComponentSpec,
        visiting: &mut BTreeSet<String>,
    ) -> BTreeSet<String> {
        let Some(Trait::DaemonScaler(d)) = component.scaler() else {
            return BTreeSet::new();
        };
        if d.instances == 0 {
            return BTreeSet::new();
        }
        let needs = self.local_needs(component, visiting);
        if d.spread.is_empty() {
            return self.eligible(&Labels::new(), &needs).into_iter().collect();
        }
        d.spread
            .iter()
            .flat_map(|s| self.eligible(&s.requirements, &needs))
            .collect()
    }

    /// Why a spread has no eligible host, e.g.
    /// `spread edge: 0 of 3 hosts match requirements {tier=edge}; 2 lack trellis:gpio`.
    fn explain(&self, spread: Option<&str>, requirements: &Labels, needs: &[LocalNeed]) -> String {
        let prefix = spread.map(|s| format!("spread {s}: ")).unwrap_or_default();
        let total = self.observed.hosts.len();
        if total == 0 {
            return format!("{prefix}no hosts in the lattice");
        }
        let mut parts = Vec::new();
        if requirements.is_empty() {
            parts.push(format!("0 of {total} hosts are eligible"));
        } else {
            let matching = self
                .observed
                .hosts
                .values()
                .filter(|h| labels::matches(&h.labels, requirements))
                .count();
            parts.push(format!(
                "{matching} of {total} hosts match requirements {}",
                format_labels(requirements)
            ));
        }
        for need in needs {
            let lacking = self
                .observed
                .hosts
                .keys()
                .filter(|h| !need.hosts.contains(*h))
                .count();
            if lacking > 0 {
                parts.push(format!("{lacking} lack {}", need.package));
            }
        }
        format!("{prefix}{}", parts.join("; "))
    }
}

/// `{k=v, k2=v2}`
pub fn format_labels(labels: &Labels) -> String {
    let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{{{}}}", pairs.join(", "))
}

#[cfg(test)]
mod tests;
