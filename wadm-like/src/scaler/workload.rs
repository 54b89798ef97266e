//! Moving one component's or provider's copies to the desired placement, shared by the
//! spreadscaler and the daemonscaler, and stopping copies the app no longer declares.

use std::collections::{BTreeMap, BTreeSet};

use trellis_lattice::inventory::ProviderHealth;
use trellis_lattice::manifest::{annotations as ann, ComponentKind, ComponentSpec, ConfigSite};

use trellis_lattice::app::{ScalerState, ScalerStatus};

use super::command::{is_managed_by, managed_annotations, Command};
use super::context::{Ctx, ScalerOutput};

/// The copies of one workload this app runs, per host.
pub(super) struct Workload<'a> {
    pub spec: &'a ComponentSpec,
    /// Its lattice id.
    pub id: String,
}

/// What converging one workload takes.
#[derive(Default)]
pub(super) struct Converged {
    pub commands: Vec<Command>,
    /// Replicas (providers: healthy copies) running the desired image.
    pub actual: u32,
    /// Why it is not there yet, though nothing is wrong.
    pub pending: Vec<String>,
    /// What is wrong.
    pub problems: Vec<String>,
}

impl<'a> Workload<'a> {
    pub fn new(ctx: &Ctx<'_>, spec: &'a ComponentSpec) -> Self {
        Self {
            spec,
            id: ctx.manifest.component_id(spec),
        }
    }

    /// Copies with this id the app does not manage: taking them over would change someone
    /// else's workload, and running ours beside them would share their id, so the scaler
    /// stops and says why.
    pub fn conflicts(&self, ctx: &Ctx<'_>) -> Vec<String> {
        let mut out = Vec::new();
        for host in ctx.observed.hosts.values() {
            let annotations = match self.spec.kind {
                ComponentKind::Component => host.components.get(&self.id).map(|c| &c.annotations),
                ComponentKind::Capability => host.providers.get(&self.id).map(|p| &p.annotations),
            };
            let Some(a) = annotations else { continue };
            if is_managed_by(a, ctx.app()) {
                continue;
            }
            let owner = match (a.get(ann::MANAGED_BY), a.get(ann::APP)) {
                (Some(_), Some(other)) => format!("it belongs to app {other}"),
                _ => "it is not managed by trellis-deploy".to_string(),
            };
            out.push(format!(
                "{} {} already runs on host {} and {owner}; refusing to take it over \
                 (stop it, or give this component another properties.id)",
                self.spec.kind.as_str(),
                self.id,
                host_name(ctx, &host.id)
            ));
        }
        out
    }

    /// Replicas this app runs per host, whatever their image (providers count 1).
    pub fn current(&self, ctx: &Ctx<'_>) -> BTreeMap<String, u32> {
        let app = ctx.app();
        ctx.observed
            .hosts
            .values()
            .filter_map(|h| {
                let n = match self.spec.kind {
                    ComponentKind::Component => h
                        .components
                        .get(&self.id)
                        .filter(|c| is_managed_by(&c.annotations, app))
                        .map(|c| c.replicas),
                    ComponentKind::Capability => h
                        .providers
                        .get(&self.id)
                        .filter(|p| is_managed_by(&p.annotations, app))
                        .map(|_| 1),
                }?;
                Some((h.id.clone(), n))
            })
            .collect()
    }

    /// Commands moving the app's copies to `desired` (replicas per host). With
    /// `hold_stops`, copies on hosts that should have none are stopped only once every
    /// desired placement runs the desired image: start new, then stop old.
    pub fn converge(
        &self,
        ctx: &Ctx<'_>,
        desired: &BTreeMap<String, u32>,
        hold_stops: bool,
    ) -> Converged {
        match self.spec.kind {
            ComponentKind::Component => self.converge_component(ctx, desired, hold_stops),
            ComponentKind::Capability => self.converge_provider(ctx, desired, hold_stops),
        }
    }

    fn converge_component(
        &self,
        ctx: &Ctx<'_>,
        desired: &BTreeMap<String, u32>,
        hold_stops: bool,
    ) -> Converged {
        let app = ctx.app();
        let image = &self.spec.properties.image;
        let annotations = managed_annotations(ctx.manifest, self.spec);
        let config = ctx.manifest.config_names(self.spec, ConfigSite::Properties);
        // Checked when the manifest was validated.
        let grants = self.spec.properties.grants().unwrap_or_default();
        let mut out = Converged::default();
        let mut stops = Vec::new();
        let mut ready = true;
        for host in ctx.observed.hosts.values() {
            let running = host
                .components
                .get(&self.id)
                .filter(|c| is_managed_by(&c.annotations, app));
            let want = desired.get(&host.id).copied().unwrap_or(0);
            if let Some(c) = running.filter(|c| c.image == *image) {
                out.actual += c.replicas;
            }
            if want == 0 {
                if let Some(c) = running {
                    stops.push(Command::ScaleComponent {
                        host_id: host.id.clone(),
                        component_id: self.id.clone(),
                        image: c.image.clone(),
                        replicas: 0,
                        config: Vec::new(),
                        annotations: BTreeMap::new(),
                        grants: Default::default(),
                        issuer: None,
                    });
                }
                continue;
            }
            let up_to_date = running.is_some_and(|c| {
                c.image == *image && c.replicas == want && ours_match(&c.annotations, &annotations)
            });
            if !up_to_date {
                // A different image on the host is swapped in place with no gap.
                ready &= running.is_some_and(|c| c.image == *image && c.replicas >= want);
                out.commands.push(Command::ScaleComponent {
                    host_id: host.id.clone(),
                    component_id: self.id.clone(),
                    image: image.clone(),
                    replicas: want,
                    config: config.clone(),
                    annotations: annotations.clone(),
                    grants: grants.clone(),
                    issuer: self.spec.properties.issuer.clone(),
                });
            }
        }
        self.finish_stops(&mut out, stops, ready || !hold_stops);
        out
    }

    fn converge_provider(
        &self,
        ctx: &Ctx<'_>,
        desired: &BTreeMap<String, u32>,
        hold_stops: bool,
    ) -> Converged {
        let app = ctx.app();
        let image = &self.spec.properties.image;
        let config = ctx.manifest.config_names(self.spec, ConfigSite::Properties);
        let mut out = Converged::default();
        let mut stops = Vec::new();
        let mut ready = true;
        for host in ctx.observed.hosts.values() {
            let running = host
                .providers
                .get(&self.id)
                .filter(|p| is_managed_by(&p.annotations, app));
            let wanted = desired.get(&host.id).is_some_and(|n| *n > 0);
            let stop = Command::StopProvider {
                host_id: host.id.clone(),
                provider_id: self.id.clone(),
            };
            match (running, wanted) {
                (Some(_), false) => stops.push(stop),
                (None, false) => {}
                (None, true) => {
                    ready = false;
                    out.commands.push(Command::StartProvider {
                        host_id: host.id.clone(),
                        provider_id: self.id.clone(),
                        image: image.clone(),
                        config: config.clone(),
                        annotations: managed_annotations(ctx.manifest, self.spec),
                    });
                }
                (Some(p), true) if p.image != *image => {
                    // A provider cannot be swapped in place: stop it now, start the new image
                    // on the next pass (when the host no longer lists it). Only a version
                    // change of the annotations does not restart it.
                    ready = false;
                    out.commands.push(stop);
                    out.pending.push(format!(
                        "replacing the provider image on host {}",
                        host_name(ctx, &host.id)
                    ));
                }
                (Some(p), true) => match p.health {
                    ProviderHealth::Healthy => out.actual += 1,
                    ProviderHealth::Starting | ProviderHealth::Restarting => {
                        ready = false;
                        out.pending
                            .push(format!("starting on host {}", host_name(ctx, &host.id)));
                    }
                    ProviderHealth::Unhealthy | ProviderHealth::NoAnswer => {
                        ready = false;
                        out.problems.push(format!(
                            "unhealthy on host {} ({:?}); the host is restarting it",
                            host_name(ctx, &host.id),
                            p.health
                        ));
                    }
                },
            }
        }
        self.finish_stops(&mut out, stops, ready || !hold_stops);
        out
    }

    fn finish_stops(&self, out: &mut Converged, stops: Vec<Command>, now: bool) {
        if stops.is_empty() {
            return;
        }
        if now {
            out.commands.extend(stops);
        } else {
            out.pending.push(format!(
                "{} old copies stop once the new placement runs",
                stops.len()
            ));
        }
    }

    /// The status of a scaler of this workload.
    pub fn status(
        &self,
        kind: &str,
        desired: u32,
        placements: BTreeMap<String, u32>,
        converged: Converged,
        mut problems: Vec<String>,
    ) -> ScalerOutput {
        problems.extend(converged.problems);
        let state = if !problems.is_empty() {
            ScalerState::Failed
        } else if !converged.commands.is_empty()
            || !converged.pending.is_empty()
            || converged.actual != desired
        {
            ScalerState::Reconciling
        } else {
            ScalerState::Deployed
        };
        let reasons: Vec<String> = problems.into_iter().chain(converged.pending).collect();
        ScalerOutput {
            commands: converged.commands,
            status: ScalerStatus {
                kind: kind.to_string(),
                name: self.id.clone(),
                component: self.spec.name.clone(),
                state,
                reason: (!reasons.is_empty()).then(|| reasons.join("; ")),
                desired,
                actual: converged.actual,
                placements,
            },
        }
    }

    /// A scaler that will not act because of conflicting copies.
    pub fn refused(&self, kind: &str, desired: u32, conflicts: Vec<String>) -> ScalerOutput {
        self.status(
            kind,
            desired,
            BTreeMap::new(),
            Converged::default(),
            conflicts,
        )
    }
}

/// Whether the annotations we set are all present with our values (the host may add others).
fn ours_match(have: &BTreeMap<String, String>, ours: &BTreeMap<String, String>) -> bool {
    ours.iter().all(|(k, v)| have.get(k) == Some(v))
}

/// `friendly-name (id)` for messages, or the id alone.
pub(super) fn host_name(ctx: &Ctx<'_>, id: &str) -> String {
    match ctx.observed.hosts.get(id) {
        Some(h) if !h.friendly_name.is_empty() && h.friendly_name != id => {
            format!("{} ({id})", h.friendly_name)
        }
        _ => id.to_string(),
    }
}

/// Stops copies this app runs that no declared, scaled component accounts for (a component
/// removed or renamed in a new version, or whose scaler was removed).
pub(super) fn orphans(ctx: &Ctx<'_>) -> Vec<Command> {
    let app = ctx.app();
    let scaled: BTreeSet<(ComponentKind, String)> = ctx
        .manifest
        .spec
        .components
        .iter()
        .filter(|c| c.scaler().is_some())
        .map(|c| (c.kind, ctx.manifest.component_id(c)))
        .collect();
    let mut out = Vec::new();
    for host in ctx.observed.hosts.values() {
        for (id, c) in &host.components {
            if is_managed_by(&c.annotations, app)
                && !scaled.contains(&(ComponentKind::Component, id.clone()))
            {
                out.push(Command::ScaleComponent {
                    host_id: host.id.clone(),
                    component_id: id.clone(),
                    image: c.image.clone(),
                    replicas: 0,
                    config: Vec::new(),
                    annotations: BTreeMap::new(),
                    grants: Default::default(),
                    issuer: None,
                });
            }
        }
        for (id, p) in &host.providers {
            if is_managed_by(&p.annotations, app)
                && !scaled.contains(&(ComponentKind::Capability, id.clone()))
            {
                out.push(Command::StopProvider {
                    host_id: host.id.clone(),
                    provider_id: id.clone(),
                });
            }
        }
    }
    out
}
