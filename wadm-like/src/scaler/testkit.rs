//! Test helpers: manifests from YAML, hand-built lattices, and a fake lattice that carries
//! out commands the way hosts would, to check that plans converge.

use std::collections::BTreeMap;

use trellis_lattice::manifest::Manifest;

use super::{plan, Command, Plan};
use crate::model::{Observed, ObservedHost};

pub fn manifest(yaml: &str) -> Manifest {
    trellis_validate::parse("test.yaml", yaml)
        .unwrap_or_else(|e| panic!("invalid test manifest:\n{e}"))
}

pub fn host(id: &str, labels: &[(&str, &str)]) -> ObservedHost {
    ObservedHost::new(
        id,
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

pub fn lattice(hosts: Vec<ObservedHost>) -> Observed {
    let mut o = Observed::default();
    for h in hosts {
        o.add_host(h);
    }
    o
}

/// Carries out `app`'s commands as hosts and the lattice store would.
pub fn apply(observed: &mut Observed, app: &str, commands: &[Command]) {
    for c in commands {
        observed.apply_for(app, c);
    }
}

/// Plans and applies until a plan has no commands; returns that plan and the passes that
/// changed something. Panics when it does not settle (flapping).
pub fn converge(
    manifest: &Manifest,
    previous: Option<&Manifest>,
    observed: &mut Observed,
) -> (Plan, usize) {
    for pass in 0..10 {
        let p = plan(manifest, previous, observed);
        if p.commands.is_empty() {
            return (p, pass);
        }
        apply(observed, manifest.name(), &p.commands);
    }
    panic!(
        "no convergence after 10 passes; last plan: {:#?}",
        plan(manifest, previous, observed)
    );
}

/// Replicas of a component per host.
pub fn replicas(observed: &Observed, component_id: &str) -> BTreeMap<String, u32> {
    observed
        .hosts
        .values()
        .filter_map(|h| Some((h.id.clone(), h.components.get(component_id)?.replicas)))
        .collect()
}

/// Hosts running a provider.
pub fn provider_hosts(observed: &Observed, provider_id: &str) -> Vec<String> {
    observed
        .hosts
        .values()
        .filter(|h| h.providers.contains_key(provider_id))
        .map(|h| h.id.clone())
        .collect()
}

pub fn counts(pairs: &[(&str, u32)]) -> BTreeMap<String, u32> {
    pairs.iter().map(|(h, n)| (h.to_string(), *n)).collect()
}
