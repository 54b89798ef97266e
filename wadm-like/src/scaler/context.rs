//! What every scaler is given and what it returns.

use trellis_lattice::app::ScalerStatus;
use trellis_lattice::manifest::{ComponentKind, Manifest};

use super::command::Command;
use crate::model::Observed;
use crate::placement::Placer;

/// What one scaler wants done and how it stands.
pub(crate) struct ScalerOutput {
    pub commands: Vec<Command>,
    pub status: ScalerStatus,
}

/// Shared inputs of every scaler.
pub(crate) struct Ctx<'a> {
    pub manifest: &'a Manifest,
    pub observed: &'a Observed,
    pub placer: Placer<'a>,
}

impl<'a> Ctx<'a> {
    pub(super) fn new(manifest: &'a Manifest, observed: &'a Observed) -> Self {
        Self {
            manifest,
            observed,
            placer: Placer::new(manifest, observed),
        }
    }

    pub(super) fn app(&self) -> &str {
        self.manifest.name()
    }
}

/// Providers run once per host, components with replicas.
pub(super) fn per_host_cap(kind: ComponentKind) -> Option<u32> {
    match kind {
        ComponentKind::Capability => Some(1),
        ComponentKind::Component => None,
    }
}
