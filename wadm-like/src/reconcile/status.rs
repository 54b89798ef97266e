//! An app's status from its plan and the failures of its commands.

use chrono::Utc;
use trellis_lattice::app::{AppState, AppStatus, ScalerState, ScalerStatus};

use super::exec::Backoff;
use crate::model::Observed;
use crate::scaler::Command;

/// The scaler a command belongs to: (kind filter, name).
fn scaler_of(c: &Command) -> Option<(&'static [&'static str], String)> {
    const WORKLOAD: &[&str] = &["spreadscaler", "daemonscaler"];
    match c {
        Command::ScaleComponent { component_id, .. } => Some((WORKLOAD, component_id.clone())),
        Command::StartProvider { provider_id, .. } | Command::StopProvider { provider_id, .. } => {
            Some((WORKLOAD, provider_id.clone()))
        }
        Command::PutLink(l) => Some((
            &["link"],
            format!(
                "{} -> {} ({}, {})",
                l.source_id,
                l.target_id,
                l.package(),
                l.name
            ),
        )),
        Command::PutConfig { name, .. } => Some((&["config"], name.clone())),
        Command::DeleteLink(_) | Command::DeleteConfig { .. } => None,
    }
}

/// Where a command runs, for messages.
fn place(c: &Command, observed: &Observed) -> String {
    let host = match c {
        Command::ScaleComponent { host_id, .. }
        | Command::StartProvider { host_id, .. }
        | Command::StopProvider { host_id, .. } => host_id,
        _ => return String::new(),
    };
    match observed.hosts.get(host) {
        Some(h) if !h.friendly_name.is_empty() && h.friendly_name != *host => {
            format!("on host {} ({host}): ", h.friendly_name)
        }
        _ => format!("on host {host}: "),
    }
}

/// Marks the scalers whose commands keep failing as failed, with the host's error and the
/// retry time; returns reasons for failing commands no scaler owns (removals).
pub fn overlay_failures(
    scalers: &mut [ScalerStatus],
    commands: &[Command],
    backoff: &Backoff,
    observed: &Observed,
) -> Vec<String> {
    let mut orphans = Vec::new();
    for c in commands {
        let Some(f) = backoff.failure(c) else {
            continue;
        };
        let reason = format!(
            "{}{} (failed {} time{}; retrying every {})",
            place(c, observed),
            f.reason,
            f.failures,
            if f.failures == 1 { "" } else { "s" },
            humantime::format_duration(f.delay)
        );
        let owner = scaler_of(c).and_then(|(kinds, name)| {
            scalers
                .iter_mut()
                .find(|s| kinds.contains(&s.kind.as_str()) && s.name == name)
        });
        match owner {
            Some(s) => {
                s.state = ScalerState::Failed;
                s.reason = Some(match s.reason.take() {
                    Some(r) if !r.is_empty() => format!("{reason}; {r}"),
                    _ => reason,
                });
            }
            None => orphans.push(reason),
        }
    }
    orphans
}

/// One line saying why an app is not deployed.
pub fn summary(state: AppState, scalers: &[ScalerStatus], extra: &[String]) -> Option<String> {
    let wanted = match state {
        AppState::Failed => ScalerState::Failed,
        AppState::Reconciling => ScalerState::Reconciling,
        _ => return None,
    };
    let mut parts: Vec<String> = scalers
        .iter()
        .filter(|s| s.state == wanted)
        .map(|s| match &s.reason {
            Some(r) => format!("{} {}: {r}", s.kind, s.name),
            None => format!("{} {}: {}/{}", s.kind, s.name, s.actual, s.desired),
        })
        .collect();
    parts.extend(extra.iter().cloned());
    const MAX: usize = 5;
    let more = parts.len().saturating_sub(MAX);
    parts.truncate(MAX);
    if more > 0 {
        parts.push(format!("and {more} more"));
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// Equal but for the time it was computed.
pub fn same(a: &AppStatus, b: &AppStatus) -> bool {
    a.name == b.name
        && a.version == b.version
        && a.status == b.status
        && a.reason == b.reason
        && a.scalers == b.scalers
        && a.generation == b.generation
}

pub fn status(
    name: &str,
    version: Option<String>,
    state: AppState,
    reason: Option<String>,
    scalers: Vec<ScalerStatus>,
    generation: u64,
) -> AppStatus {
    AppStatus {
        name: name.to_string(),
        version,
        status: state,
        reason,
        scalers,
        generation,
        updated_at: Utc::now(),
    }
}
