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
        // What runs on an unreachable host is removed when it is back: until then the
        // removal is not finished (or the host would come back running a forgotten app).
        let before = commands.len();
        commands.retain(|c| reaches(c, observed));
        let waiting = before - commands.len();
        commands.sort_by_key(Command::phase);
        let version = removal
            .manifests
            .first()
            .and_then(|m| m.version())
            .map(str::to_string);
        let extra = status::overlay_failures(&mut [], &commands, backoff, observed);
        let (state, reason, finish) = if commands.is_empty() && waiting > 0 {
            (
                AppState::Reconciling,
                Some(format!(
                    "waiting for unreachable hosts to remove {waiting} resources"
                )),
                None,
            )
        } else if commands.is_empty() {
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
    let now = Instant::now();
    let within = observed.within_grace(crate::model::unreachable_grace(&d.manifest), now);
    let plan = scaler::plan(&d.manifest, d.previous.as_ref(), &within);
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
    let failing_new = plan
        .commands
        .iter()
        .any(|c| c.phase() <= 2 && backoff.failure(c).is_some());
    let commands: Vec<Command> = plan
        .commands
        .into_iter()
        .filter(|c| !backoff.blocked(c, now))
        .filter(|c| !(failing_new && c.phase() > 2))
        .filter(|c| reaches(c, observed))
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

/// Whether a command's host (if it has one) can be reached: an unreachable host is sent
/// nothing; it keeps what it runs until it is back.
fn reaches(command: &Command, observed: &Observed) -> bool {
    command.host_id().is_none_or(|h| observed.reachable(h))
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::records::Deployment;
    use crate::scaler::testkit::{host, lattice, manifest};

    const ONE: &str = "
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata: { name: flaky, annotations: { version: v1 } }
spec:
  components:
    - name: g
      type: component
      properties: { image: file:///missing.wasm }
      traits:
        - type: spreadscaler
          properties: { instances: 1 }
";

    fn deployed() -> AppRecord {
        AppRecord {
            name: "flaky".into(),
            versions: Vec::new(),
            deployment: Some(Deployment {
                version: "v1".into(),
                manifest: manifest(ONE),
                previous: None,
                at: chrono::Utc::now(),
            }),
            removal: None,
            generation: 1,
            history: Vec::new(),
        }
    }

    fn reason(p: &Planned) -> String {
        p.status.scalers[0].reason.clone().unwrap_or_default()
    }

    /// The loop runs a pass on every event; a failing command must still wait out its
    /// back-off, and the status says how often it failed and when it is tried again.
    #[tokio::test(start_paused = true)]
    async fn a_failing_command_waits_out_its_back_off_whatever_the_passes() {
        let observed = lattice(vec![host("h1", &[])]);
        let record = deployed();
        let mut backoff = Backoff::default();
        let first = plan_app(&record, &observed, &backoff);
        assert_eq!(first.commands.len(), 1, "{:#?}", first.commands);
        let command = first.commands[0].clone();

        backoff.failed(command.clone(), "no such file".into());
        let blocked = plan_app(&record, &observed, &backoff);
        assert!(blocked.commands.is_empty(), "retried at once");
        assert_eq!(blocked.status.status, AppState::Failed);
        assert!(
            reason(&blocked).contains("no such file (failed 1 time; retrying every 500ms)"),
            "{}",
            reason(&blocked)
        );
        tokio::time::advance(Duration::from_millis(499)).await;
        assert!(plan_app(&record, &observed, &backoff).commands.is_empty());
        tokio::time::advance(Duration::from_millis(2)).await;
        assert_eq!(
            plan_app(&record, &observed, &backoff).commands,
            vec![command.clone()]
        );

        // The second failure doubles the wait.
        backoff.failed(command.clone(), "no such file".into());
        let twice = plan_app(&record, &observed, &backoff);
        assert!(
            reason(&twice).contains("failed 2 times; retrying every 1s"),
            "{}",
            reason(&twice)
        );
        tokio::time::advance(Duration::from_millis(999)).await;
        assert!(plan_app(&record, &observed, &backoff).commands.is_empty());
        tokio::time::advance(Duration::from_millis(2)).await;
        assert_eq!(
            plan_app(&record, &observed, &backoff).commands,
            vec![command.clone()]
        );

        // Once it succeeds the status is clean again.
        backoff.succeeded(&command);
        let healthy = plan_app(&record, &observed, &backoff);
        assert_ne!(healthy.status.status, AppState::Failed);
    }
}
