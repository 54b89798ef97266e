//! `spreadscaler`: `instances` replicas in total across hosts, divided over the spreads by
//! weight and evenly over each spread's eligible hosts.

use std::collections::BTreeMap;

use trellis_lattice::manifest::{ComponentSpec, SpreadScaler};

use super::context::{per_host_cap, Ctx, ScalerOutput};
use super::workload::Workload;

const KIND: &str = "spreadscaler";

pub(super) fn scale(ctx: &Ctx<'_>, spec: &ComponentSpec, scaler: &SpreadScaler) -> ScalerOutput {
    let workload = Workload::new(ctx, spec);
    let conflicts = workload.conflicts(ctx);
    if !conflicts.is_empty() {
        return workload.refused(KIND, scaler.instances, conflicts);
    }
    let current = workload.current(ctx);
    let spreads = ctx
        .placer
        .place_spread(spec, scaler, &current, per_host_cap(spec.kind));
    let mut desired: BTreeMap<String, u32> = BTreeMap::new();
    let mut problems = Vec::new();
    for s in spreads {
        for (host, n) in s.hosts {
            *desired.entry(host).or_default() += n;
        }
        problems.extend(s.reason);
    }
    problems.extend(ctx.placer.link_problems(spec));
    // Upgrades: hosts that keep replicas get the new image in place (no gap); copies on
    // hosts that lose theirs stop only once the new placement runs, on a later pass.
    let converged = workload.converge(ctx, &desired, true);
    workload.status(KIND, scaler.instances, desired, converged, problems)
}
