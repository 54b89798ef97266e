//! Config: put the inline config the manifest owns before anything that reads it, report
//! named config it references but nobody created, and delete inline config an earlier
//! version owned.

use std::collections::BTreeMap;

use trellis_lattice::link::Config;
use trellis_lattice::manifest::Manifest;

use trellis_lattice::app::{ScalerState, ScalerStatus};

use super::command::Command;
use super::context::{Ctx, ScalerOutput};
use crate::model::{Claim, Observed};

const KIND: &str = "config";

/// The inline config the manifest owns: name → (values, component declaring it first).
pub(super) fn owned(manifest: &Manifest) -> BTreeMap<String, (Config, String)> {
    let mut out = BTreeMap::new();
    for c in &manifest.spec.components {
        for u in manifest.config_uses(c) {
            if let Some(values) = u.properties {
                out.entry(u.name)
                    .or_insert_with(|| (values.clone(), c.name.clone()));
            }
        }
    }
    out
}

pub(super) fn scale(ctx: &Ctx<'_>) -> Vec<ScalerOutput> {
    let owned = owned(ctx.manifest);
    let mut out = Vec::new();
    for (name, (values, component)) in &owned {
        // Never overwrite a config a user or another app created.
        if let Err(reason) = ctx
            .observed
            .may_change(&Claim::Config(name.clone()), ctx.app())
        {
            out.push(ScalerOutput {
                commands: vec![],
                status: status(name, component, ScalerState::Failed, Some(reason), false),
            });
            continue;
        }
        let current = ctx.observed.configs.get(name) == Some(values);
        out.push(ScalerOutput {
            commands: if current {
                vec![]
            } else {
                vec![Command::PutConfig {
                    name: name.clone(),
                    values: values.clone(),
                }]
            },
            status: status(
                name,
                component,
                if current {
                    ScalerState::Deployed
                } else {
                    ScalerState::Reconciling
                },
                None,
                current,
            ),
        });
    }
    // References to named config the app does not own: it must exist already.
    let mut missing: BTreeMap<String, String> = BTreeMap::new();
    for c in &ctx.manifest.spec.components {
        for u in ctx.manifest.config_uses(c) {
            if u.properties.is_none()
                && !owned.contains_key(&u.name)
                && !ctx.observed.configs.contains_key(&u.name)
            {
                missing.entry(u.name).or_insert_with(|| c.name.clone());
            }
        }
    }
    for (name, component) in missing {
        let reason = format!(
            "named config {name} does not exist; create it, or give its properties in the manifest"
        );
        out.push(ScalerOutput {
            commands: vec![],
            status: status(&name, &component, ScalerState::Failed, Some(reason), false),
        });
    }
    out
}

fn status(
    name: &str,
    component: &str,
    state: ScalerState,
    reason: Option<String>,
    present: bool,
) -> ScalerStatus {
    ScalerStatus {
        kind: KIND.into(),
        name: name.to_string(),
        component: component.to_string(),
        state,
        reason,
        desired: 1,
        actual: u32::from(present),
        placements: Default::default(),
    }
}

/// Inline config `previous` owned that `manifest` does not, and that still exists and
/// belongs to the app.
pub(super) fn removed(
    manifest: &Manifest,
    previous: &Manifest,
    observed: &Observed,
) -> Vec<Command> {
    let now = owned(manifest);
    owned(previous)
        .into_keys()
        .filter(|name| !now.contains_key(name) && observed.configs.contains_key(name))
        .filter(|name| observed.owns(&Claim::Config(name.clone()), manifest.name()))
        .map(|name| Command::DeleteConfig { name })
        .collect()
}
