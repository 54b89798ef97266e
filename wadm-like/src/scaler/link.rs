//! Links: put each link the manifest declares when it is missing or differs (a different
//! target is one atomic retarget), and delete links an earlier version declared.

use std::collections::BTreeSet;

use trellis_lattice::link::{Link, LinkKey};
use trellis_lattice::manifest::{ComponentSpec, ConfigSite, Manifest};

use super::workload::Workload;
use trellis_lattice::app::{ScalerState, ScalerStatus};

use super::command::Command;
use super::context::{Ctx, ScalerOutput};
use crate::model::{Claim, Observed};

const KIND: &str = "link";

/// Every link the manifest declares, with the component declaring it.
fn declared_with_source(manifest: &Manifest) -> Vec<(&ComponentSpec, Link)> {
    let mut out = Vec::new();
    for source in &manifest.spec.components {
        for (trait_index, lt) in source.links() {
            let Some(target) = manifest.component(&lt.target.name) else {
                continue; // validation rejects this; nothing sensible to put
            };
            let link = Link {
                source_id: manifest.component_id(source),
                target_id: manifest.component_id(target),
                name: lt.link_name().to_string(),
                wit_namespace: lt.namespace.clone(),
                wit_package: lt.package.clone(),
                interfaces: lt.interfaces.clone(),
                source_config: manifest
                    .config_names(source, ConfigSite::LinkSource { trait_index }),
                target_config: manifest
                    .config_names(source, ConfigSite::LinkTarget { trait_index }),
            };
            out.push((source, link));
        }
    }
    out
}

/// Every link the manifest declares.
pub(super) fn declared(manifest: &Manifest) -> Vec<Link> {
    declared_with_source(manifest)
        .into_iter()
        .map(|(_, l)| l)
        .collect()
}

pub(super) fn scale(ctx: &Ctx<'_>) -> Vec<ScalerOutput> {
    declared_with_source(ctx.manifest)
        .into_iter()
        .map(|(source, link)| one(ctx, source, link))
        .collect()
}

fn one(ctx: &Ctx<'_>, source: &ComponentSpec, link: Link) -> ScalerOutput {
    let name = format!(
        "{} -> {} ({}, {})",
        link.source_id,
        link.target_id,
        link.package(),
        link.name
    );
    let status = |state, reason: Option<String>, actual| ScalerStatus {
        kind: KIND.into(),
        name: name.clone(),
        component: source.name.clone(),
        state,
        reason,
        desired: 1,
        actual,
        placements: Default::default(),
    };
    // Never change a link a user or another app created.
    if let Err(reason) = ctx.observed.may_change(&Claim::Link(link.key()), ctx.app()) {
        return ScalerOutput {
            commands: vec![],
            status: status(ScalerState::Failed, Some(reason), 0),
        };
    }
    let observed = ctx.observed.link(&link.key());
    if observed.is_some_and(|o| same(o, &link)) {
        return ScalerOutput {
            commands: vec![],
            status: status(ScalerState::Deployed, None, 1),
        };
    }
    // Linking a component run by someone else would change their workload.
    if source.scaler().is_some() {
        let conflicts = Workload::new(ctx, source).conflicts(ctx);
        if !conflicts.is_empty() {
            let reason = format!("not linking: {}", conflicts.join("; "));
            return ScalerOutput {
                commands: vec![],
                status: status(
                    ScalerState::Failed,
                    Some(reason),
                    u32::from(observed.is_some()),
                ),
            };
        }
    }
    // Retarget only once the new target runs somewhere, so calls never go to nothing.
    if let Some(old) = observed.filter(|o| o.target_id != link.target_id) {
        let target = ctx
            .manifest
            .spec
            .components
            .iter()
            .find(|c| ctx.manifest.component_id(c) == link.target_id);
        if let Some(target) = target.filter(|t| t.scaler().is_some()) {
            if Workload::new(ctx, target).current(ctx).is_empty() {
                let reason = format!(
                    "waiting for {} to run before moving the link from {}",
                    link.target_id, old.target_id
                );
                return ScalerOutput {
                    commands: vec![],
                    status: status(ScalerState::Reconciling, Some(reason), 0),
                };
            }
        }
    }
    ScalerOutput {
        commands: vec![Command::PutLink(link)],
        status: status(ScalerState::Reconciling, None, 0),
    }
}

/// Equal links; the interface order does not matter.
fn same(a: &Link, b: &Link) -> bool {
    let set = |l: &Link| l.interfaces.iter().cloned().collect::<BTreeSet<_>>();
    a.source_id == b.source_id
        && a.target_id == b.target_id
        && a.name == b.name
        && a.wit_namespace == b.wit_namespace
        && a.wit_package == b.wit_package
        && set(a) == set(b)
        && a.source_config == b.source_config
        && a.target_config == b.target_config
}

/// Links `previous` declared that `manifest` does not, and that still exist.
pub(super) fn removed(
    manifest: &Manifest,
    previous: &Manifest,
    observed: &Observed,
) -> Vec<Command> {
    let now: BTreeSet<LinkKey> = declared(manifest).iter().map(Link::key).collect();
    let before: BTreeSet<LinkKey> = declared(previous).iter().map(Link::key).collect();
    before
        .difference(&now)
        .filter(|k| observed.link(k).is_some())
        .filter(|k| observed.owns(&Claim::Link((*k).clone()), manifest.name()))
        .map(|k| Command::DeleteLink(k.clone()))
        .collect()
}
