//! `daemonscaler`: `instances` replicas (a provider: one copy) on every host matching any
//! spread's requirements, or on every host when there is no spread.

use std::collections::BTreeMap;

use trellis_lattice::manifest::{ComponentKind, ComponentSpec, DaemonScaler};

use super::context::{Ctx, ScalerOutput};
use super::workload::Workload;

const KIND: &str = "daemonscaler";

pub(super) fn scale(ctx: &Ctx<'_>, spec: &ComponentSpec, scaler: &DaemonScaler) -> ScalerOutput {
    let workload = Workload::new(ctx, spec);
    let per_host = match spec.kind {
        ComponentKind::Component => scaler.instances,
        ComponentKind::Capability => scaler.instances.min(1),
    };
    let (hosts, mut problems) = match ctx.placer.daemon_hosts(spec) {
        Ok(hosts) => (hosts, Vec::new()),
        Err(reason) => (Default::default(), vec![format!("no host fits: {reason}")]),
    };
    let desired_total = per_host.saturating_mul(u32::try_from(hosts.len()).unwrap_or(u32::MAX));
    let conflicts = workload.conflicts(ctx);
    if !conflicts.is_empty() {
        return workload.refused(KIND, desired_total, conflicts);
    }
    let desired: BTreeMap<String, u32> = if per_host == 0 {
        BTreeMap::new()
    } else {
        hosts.into_iter().map(|h| (h, per_host)).collect()
    };
    problems.extend(ctx.placer.link_problems(spec));
    // Each host's copy is independent of the others', so a host that stops matching (a
    // label change) is cleared at once rather than waiting for the rest.
    let converged = workload.converge(ctx, &desired, false);
    workload.status(KIND, desired_total, desired, converged, problems)
}
