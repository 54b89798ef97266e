//! Carrying out commands with the [`LatticeClient`], and backing off per target when they
//! fail.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument as _;

use futures::StreamExt as _;
use tokio::sync::{mpsc, Semaphore};
use tokio::time::Instant;
use trellis_lattice::control::{ScaleComponent, StartProvider};
use trellis_lattice::{LatticeClient, Placement};

use super::input::Input;
use crate::claims::{self, Taken};
use crate::model::Claim;
use crate::records::AppStore;
use crate::scaler::Command;

/// First retry delay after a failure; doubles per failure up to [`BACKOFF_CAP`].
const BACKOFF_BASE: Duration = Duration::from_millis(500);
const BACKOFF_CAP: Duration = Duration::from_secs(30);
/// Commands of one phase of one app run at once, at most this many.
const PHASE_CONCURRENCY: usize = 16;

/// Runs one command.
pub async fn execute(client: &LatticeClient, command: &Command) -> Result<(), String> {
    let result = match command {
        Command::ScaleComponent {
            host_id,
            component_id,
            image,
            replicas,
            config,
            annotations,
            grants,
            issuer,
        } => client
            .scale_component(
                host_id,
                &ScaleComponent {
                    component_id: component_id.clone(),
                    image: image.clone(),
                    replicas: *replicas,
                    config: config.clone(),
                    max_memory_bytes: None,
                    timeout_ms: None,
                    annotations: annotations.clone(),
                    grants: grants.clone(),
                    issuer: issuer.clone(),
                },
            )
            .await
            .map(drop),
        Command::StartProvider {
            host_id,
            provider_id,
            image,
            config,
            annotations,
        } => client
            .start_provider(
                &Placement::Host(host_id.clone()),
                &StartProvider {
                    provider_id: provider_id.clone(),
                    image: image.clone(),
                    config: config.clone(),
                    annotations: annotations.clone(),
                },
            )
            .await
            .map(drop),
        Command::StopProvider {
            host_id,
            provider_id,
        } => client.stop_provider(host_id, provider_id).await,
        Command::PutConfig { name, values } => client.put_config(name, values.clone()).await,
        Command::DeleteConfig { name } => client.delete_config(name).await,
        Command::PutLink(link) => client.put_link(link.clone()).await.map(drop),
        Command::DeleteLink(key) => client.delete_link(key.clone()).await,
    };
    result.map_err(|e| e.to_string())
}

/// Runs `command` for `app`, taking the claim on what it creates first (and refusing to
/// touch what another app or a user created), and giving up the claim on what it deleted.
async fn execute_owned(
    client: &LatticeClient,
    store: &AppStore,
    app: &str,
    command: &Command,
) -> Result<(), String> {
    let Some(claim) = Claim::of(command) else {
        return execute(client, command).await;
    };
    let deleting = matches!(
        command,
        Command::DeleteConfig { .. } | Command::DeleteLink(_)
    );
    if !deleting {
        match claims::take(store, &claim, app).await {
            Ok(Taken::Held) => {}
            Ok(Taken::New) => {
                // A user may have put it since the plan: then it is theirs, not the app's.
                if exists(client, &claim).await? {
                    claims::give_up(store, &claim, app)
                        .await
                        .map_err(|e| e.to_string())?;
                    return Err(format!(
                        "{claim} exists and was not created by application {app}; not changing it"
                    ));
                }
            }
            Ok(Taken::Owner(owner)) => {
                return Err(format!(
                    "{claim} belongs to application {owner}; not changing it"
                ))
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    execute(client, command).await?;
    if deleting {
        claims::give_up(store, &claim, app)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

async fn exists(client: &LatticeClient, claim: &Claim) -> Result<bool, String> {
    let found = match claim {
        Claim::Config(name) => client.named_config(name).await.map(|c| c.is_some()),
        Claim::Link(key) => match client.store().await {
            Ok(store) => store.link(key).await.map(|l| l.is_some()),
            Err(e) => Err(e),
        },
    };
    found.map_err(|e| e.to_string())
}

/// Runs one app's commands phase by phase (each phase's commands at once, bounded by
/// `limit`), reporting each result. A failing phase ends the job: later phases (links to
/// what did not start, stops of what it should replace) wait for the next pass.
pub async fn run_job(
    client: Arc<LatticeClient>,
    store: AppStore,
    app: String,
    commands: Vec<Command>,
    tx: mpsc::Sender<Input>,
    limit: Arc<Semaphore>,
) {
    // One trace per pass over an app: the commands it issued are its children, and the
    // hosts' handling of each continues the command's span.
    let span = trellis_telemetry::spans::root(&format!("reconcile {app}"));
    run_phases(client, store, app, commands, tx, limit)
        .instrument(span)
        .await
}

async fn run_phases(
    client: Arc<LatticeClient>,
    store: AppStore,
    app: String,
    commands: Vec<Command>,
    tx: mpsc::Sender<Input>,
    limit: Arc<Semaphore>,
) {
    let mut rest = &commands[..];
    while let Some(first) = rest.first() {
        let phase = first.phase();
        let n = rest.iter().take_while(|c| c.phase() == phase).count();
        let (now, later) = rest.split_at(n);
        rest = later;
        let results: Vec<bool> = futures::stream::iter(now.iter().cloned())
            .map(|command| {
                let client = Arc::clone(&client);
                let store = store.clone();
                let tx = tx.clone();
                let limit = Arc::clone(&limit);
                let app = app.clone();
                async move {
                    let _permit = limit.acquire_owned().await.ok();
                    let span =
                        trellis_telemetry::spans::command(command.operation(), &target(&command));
                    let result = execute_owned(&client, &store, &app, &command)
                        .instrument(span.clone())
                        .await;
                    if let Err(reason) = &result {
                        trellis_telemetry::spans::fail(&span, "command", reason);
                    }
                    let ok = result.is_ok();
                    if let Err(reason) = &result {
                        tracing::warn!(app, ?command, reason, "command failed");
                    } else {
                        tracing::debug!(app, ?command, "command done");
                    }
                    let _ = tx
                        .send(Input::Done {
                            app: app.clone(),
                            command,
                            result,
                        })
                        .await;
                    ok
                }
            })
            .buffer_unordered(PHASE_CONCURRENCY)
            .collect()
            .await;
        if results.iter().any(|ok| !ok) {
            break;
        }
    }
    let _ = tx.send(Input::JobDone { app }).await;
}

/// A command that failed, and when it may be tried again.
#[derive(Clone, Debug)]
pub struct Failure {
    pub command: Command,
    pub failures: u32,
    pub retry_at: Instant,
    /// The wait before the next try.
    pub delay: Duration,
    pub reason: String,
}

/// Per-target back-off: a target whose command keeps failing is retried after 0.5 s, 1 s,
/// 2 s, ... up to 30 s. A different command for the target (the plan changed) goes at once.
#[derive(Default)]
pub struct Backoff {
    by_target: HashMap<String, Failure>,
}

/// What a command acts on: the same target in two plans is the same thing to back off.
pub fn target(c: &Command) -> String {
    match c {
        Command::ScaleComponent {
            host_id,
            component_id,
            ..
        } => format!("component/{host_id}/{component_id}"),
        Command::StartProvider {
            host_id,
            provider_id,
            ..
        }
        | Command::StopProvider {
            host_id,
            provider_id,
        } => format!("provider/{host_id}/{provider_id}"),
        Command::PutConfig { name, .. } | Command::DeleteConfig { name } => {
            format!("config/{name}")
        }
        Command::PutLink(l) => format!("link/{}", l.key().storage_key()),
        Command::DeleteLink(k) => format!("link/{}", k.storage_key()),
    }
}

impl Backoff {
    pub fn failed(&mut self, command: Command, reason: String) {
        let now = Instant::now();
        let entry = self
            .by_target
            .entry(target(&command))
            .or_insert_with(|| Failure {
                command: command.clone(),
                failures: 0,
                retry_at: now,
                delay: Duration::ZERO,
                reason: String::new(),
            });
        entry.failures += 1;
        let exp = entry.failures.saturating_sub(1).min(16);
        let delay = BACKOFF_BASE.saturating_mul(1 << exp).min(BACKOFF_CAP);
        entry.retry_at = now + delay;
        entry.delay = delay;
        entry.reason = reason;
        entry.command = command;
    }

    pub fn succeeded(&mut self, command: &Command) {
        self.by_target.remove(&target(command));
    }

    /// The failure of exactly this command, if it is failing.
    pub fn failure(&self, command: &Command) -> Option<&Failure> {
        self.by_target
            .get(&target(command))
            .filter(|f| f.command == *command)
    }

    /// Whether this command must wait for its retry time.
    pub fn blocked(&self, command: &Command, now: Instant) -> bool {
        self.failure(command).is_some_and(|f| now < f.retry_at)
    }

    /// The earliest retry time still ahead.
    pub fn next_retry(&self, now: Instant) -> Option<Instant> {
        self.by_target
            .values()
            .map(|f| f.retry_at)
            .filter(|t| *t > now)
            .min()
    }

    /// Forgets failures of commands no plan has asked for in a long time.
    pub fn prune(&mut self, now: Instant) {
        self.by_target
            .retain(|_, f| now.saturating_duration_since(f.retry_at) < Duration::from_secs(300));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scale(n: u32) -> Command {
        Command::ScaleComponent {
            host_id: "H".into(),
            component_id: "c".into(),
            image: "file:///c.wasm".into(),
            replicas: n,
            config: Vec::new(),
            annotations: Default::default(),
            grants: Default::default(),
            issuer: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn backs_off_exponentially_and_resets_on_success() {
        let mut b = Backoff::default();
        let now = Instant::now();
        b.failed(scale(2), "boom".into());
        assert!(b.blocked(&scale(2), now));
        assert!(
            !b.blocked(&scale(3), now),
            "another command for the target goes at once"
        );
        assert!(!b.blocked(&scale(2), now + Duration::from_millis(600)));
        b.failed(scale(2), "boom".into());
        b.failed(scale(2), "boom".into());
        let f = b.failure(&scale(2)).unwrap();
        assert_eq!(f.failures, 3);
        assert_eq!(f.retry_at - Instant::now(), Duration::from_secs(2));
        for _ in 0..20 {
            b.failed(scale(2), "boom".into());
        }
        assert_eq!(
            b.failure(&scale(2)).unwrap().retry_at - Instant::now(),
            BACKOFF_CAP
        );
        b.succeeded(&scale(2));
        assert!(b.failure(&scale(2)).is_none());
    }
}
