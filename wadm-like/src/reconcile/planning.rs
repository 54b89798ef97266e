//! What the loop does with one app: its plan (or removal), the commands it may run now, its
//! status, and what to record once it reached a state.

use tokio::time::Instant;
use trellis_lattice::app::{AppState, AppStatus};

use super::exec::Backoff;
use super::status;
use crate::model::Observed;
use crate::records::{AppRecord, AppStore};
use crate::scaler::{self, Command};

/// What the loop should record once an app reached a state.
pub(super) enum Finish {
    /// Deployed: the previous version's leftovers are gone.
    Previous { generation: u64 },
    /// Everything removed: clear the removal (and forget a deleted app).
    Removal { generation: u64 },
}

pub(super) struct Planned {
    pub status: AppStatus,
    pub commands: Vec<Command>,
    pub finish: Option<Finish>,
}

pub(super) fn plan_app(record: &AppRecord, observed: &Observed, backoff: &Backoff) -> Planned {
    if let Some(removal) = &record.removal {
        let mut commands: Vec<Command> = Vec::new();
        for m in &removal.manifests {
            for c in scaler::plan_undeploy(m, observed) {
                if !commands.contains(&c) {
                    commands.push(c);
                }
            }
        }
        commands.sort_by_key(Command::phase);
        let version = removal
            .manifests
            .first()
            .and_then(|m| m.version())
            .map(str::to_string);
        let extra = status::overlay_failures(&mut [], &commands, backoff, observed);
        let (state, reason, finish) = if commands.is_empty() {
            (
                AppState::Undeployed,
                None,
                Some(Finish::Removal {
                    generation: record.generation,
                }),
            )
        } else if !extra.is_empty() {
            (AppState::Failed, Some(extra.join("; ")), None)
        } else {
            (
                AppState::Reconciling,
                Some(format!("removing {} resources", commands.len())),
                None,
            )
        };
        return Planned {
            status: status::status(
                &record.name,
                version,
                state,
                reason,
                vec![],
                record.generation,
            ),
            commands,
            finish,
        };
    }
    let Some(d) = &record.deployment else {
        return Planned {
            status: status::status(
                &record.name,
                None,
                AppState::Undeployed,
                None,
                vec![],
                record.generation,
            ),
            commands: vec![],
            finish: None,
        };
    };
    let plan = scaler::plan(&d.manifest, d.previous.as_ref(), observed);
    let mut scalers = plan.scalers;
    let extra = status::overlay_failures(&mut scalers, &plan.commands, backoff, observed);
    let mut state = AppState::roll_up(&scalers, !plan.commands.is_empty());
    if !extra.is_empty() {
        state = AppState::Failed;
    }
    let reason = status::summary(state, &scalers, &extra);
    let finish =
        (plan.state == AppState::Deployed && d.previous.is_some()).then_some(Finish::Previous {
            generation: record.generation,
        });
    // While something new fails, nothing old is removed.
    let now = Instant::now();
    let failing_new = plan
        .commands
        .iter()
        .any(|c| c.phase() <= 2 && backoff.failure(c).is_some());
    let commands: Vec<Command> = plan
        .commands
        .into_iter()
        .filter(|c| !backoff.blocked(c, now))
        .filter(|c| !(failing_new && c.phase() > 2))
        .collect();
    Planned {
        status: status::status(
            &record.name,
            Some(d.version.clone()),
            state,
            reason,
            scalers,
            record.generation,
        ),
        commands,
        finish,
    }
}

/// Records in the app's record that it reached a state (unless the record changed since).
pub(super) async fn record(
    store: &AppStore,
    app: &str,
    finish: Finish,
) -> crate::records::Result<()> {
    match finish {
        Finish::Previous { generation } => store
            .update_record(app, |r| {
                let mut r = r.ok_or(())?;
                if r.generation != generation {
                    return Err(());
                }
                if let Some(d) = r.deployment.as_mut() {
                    d.previous = None;
                }
                Ok((Some(r), ()))
            })
            .await
            .map(drop),
        Finish::Removal { generation } => {
            let done = store
                .update_record(app, |r| {
                    let mut r = r.ok_or(())?;
                    if r.generation != generation || r.removal.is_none() {
                        return Err(());
                    }
                    let forget = r.is_tombstone() && r.versions.is_empty();
                    r.removal = None;
                    Ok((if forget { None } else { Some(r) }, forget))
                })
                .await;
            match done {
                Ok(Ok(true)) => {
                    tracing::info!(app, "deleted");
                    store.delete_status(app).await
                }
                other => other.map(drop),
            }
        }
    }
}
