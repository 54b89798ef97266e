//! Capability providers this host supervises: built into the host, or external
//! executables it spawns, restarts with back-off, and checks for health.

mod builtin;
mod health;
mod process;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use trellis_lattice::control::{ProviderStartedReply, StartProvider};
use trellis_lattice::event::{Event, ProviderStartFailed, ProviderStarted, ProviderStopped};
use trellis_lattice::inventory::{ProviderHealth, ProviderInfo};
use trellis_lattice::provider::BUILTIN_SCHEME;

use crate::host::HostState;

/// How long a start request waits for the provider's first healthy answer: a few health
/// intervals, at least 2 s, at most 10 s.
fn first_health_wait(interval: Duration) -> Duration {
    (interval * 4).clamp(Duration::from_secs(2), Duration::from_secs(10))
}

/// Health as last seen, with the provider's message.
pub type Health = (ProviderHealth, Option<String>);

pub struct RunningProvider {
    pub id: String,
    pub image: String,
    pub config: Vec<String>,
    annotations: BTreeMap<String, String>,
    started_at: DateTime<Utc>,
    health: watch::Sender<Health>,
    ever_healthy: std::sync::atomic::AtomicBool,
    cancel: CancellationToken,
    tasks: TaskTracker,
}

impl RunningProvider {
    pub fn health(&self) -> Health {
        self.health.borrow().clone()
    }

    pub fn info(&self) -> ProviderInfo {
        let (health, message) = self.health();
        ProviderInfo {
            id: self.id.clone(),
            image: self.image.clone(),
            health,
            annotations: self.annotations.clone(),
            health_message: message,
            started_at: self.started_at,
        }
    }

    /// Whether the provider has answered healthy at least once.
    pub fn ever_healthy(&self) -> bool {
        self.ever_healthy.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Records a health change; true when it changed.
    fn set_health(&self, health: ProviderHealth, message: Option<String>) -> bool {
        if health == ProviderHealth::Healthy {
            self.ever_healthy
                .store(true, std::sync::atomic::Ordering::Release);
        }
        self.health.send_if_modified(|h| {
            if h.0 == health && h.1 == message {
                false
            } else {
                *h = (health, message);
                true
            }
        })
    }

    async fn stop(&self, timeout: Duration) {
        self.cancel.cancel();
        self.tasks.close();
        if tokio::time::timeout(timeout, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(provider_id = %self.id, "provider did not stop in time");
        }
    }
}

/// Every provider of the host, by id.
#[derive(Default)]
pub struct Providers {
    running: RwLock<HashMap<String, Arc<RunningProvider>>>,
    starting: tokio::sync::Mutex<()>,
}

impl Providers {
    pub fn get(&self, id: &str) -> Option<Arc<RunningProvider>> {
        self.running.read().ok()?.get(id).cloned()
    }

    pub fn all(&self) -> Vec<Arc<RunningProvider>> {
        let mut all: Vec<_> = self
            .running
            .read()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }

    pub fn count(&self) -> usize {
        self.running.read().map(|m| m.len()).unwrap_or(0)
    }

    fn remove(&self, id: &str) -> Option<Arc<RunningProvider>> {
        self.running
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id)
    }

    /// Stops every provider (host shutdown).
    pub async fn stop_all(&self, timeout: Duration) {
        let all: Vec<_> = self
            .running
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .map(|(_, p)| p)
            .collect();
        futures::future::join_all(all.iter().map(|p| p.stop(timeout))).await;
    }

    /// Stops supervising at once, without waiting (a host dropped abruptly).
    pub fn cancel_all(&self) {
        for (_, p) in self
            .running
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
        {
            p.cancel.cancel();
        }
    }
}

/// Starts a provider and waits for its first health answer (or its failure).
pub async fn start(
    host: &Arc<HostState>,
    req: StartProvider,
) -> Result<ProviderStartedReply, String> {
    trellis_lattice::id::validate_component_id(&req.provider_id).map_err(|e| e.to_string())?;
    let _one_at_a_time = host.providers.starting.lock().await;
    if let Some(p) = host.providers.get(&req.provider_id) {
        if p.image == req.image {
            return Ok(reply(host, &p));
        }
        return Err(format!(
            "provider {} already runs here from {}; stop it first to start {}",
            req.provider_id, p.image, req.image
        ));
    }
    if host.components.get(&req.provider_id).is_some() {
        return Err(format!(
            "a component with id {} runs here; provider ids must differ",
            req.provider_id
        ));
    }
    if !req.config.is_empty() {
        let store = host.store().await?;
        store
            .merged_config(&req.config)
            .await
            .map_err(|e| e.to_string())?;
    }
    let launch = if let Some(name) = req.image.strip_prefix(BUILTIN_SCHEME) {
        builtin::lookup(name).map(Launch::Builtin).ok_or_else(|| {
            format!(
                "no built-in provider named {name} (built in: {})",
                builtin::names().join(", ")
            )
        })?
    } else {
        Launch::Process(process::prepare(host, &req.image).await?)
    };

    let (health_tx, mut health_rx) = watch::channel((ProviderHealth::Starting, None));
    let prov = Arc::new(RunningProvider {
        id: req.provider_id.clone(),
        image: req.image.clone(),
        config: req.config.clone(),
        annotations: req.annotations.clone(),
        started_at: Utc::now(),
        health: health_tx,
        ever_healthy: Default::default(),
        cancel: CancellationToken::new(),
        tasks: TaskTracker::new(),
    });
    let (failed_tx, failed_rx) = tokio::sync::oneshot::channel::<String>();
    match launch {
        Launch::Builtin(run) => {
            prov.tasks.spawn(builtin::supervise(
                Arc::clone(host),
                Arc::clone(&prov),
                run,
                failed_tx,
            ));
        }
        Launch::Process(exe) => {
            prov.tasks.spawn(process::supervise(
                Arc::clone(host),
                Arc::clone(&prov),
                exe,
                failed_tx,
            ));
        }
    }
    prov.tasks
        .spawn(health::watch(Arc::clone(host), Arc::clone(&prov)));
    host.providers
        .running
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .insert(prov.id.clone(), Arc::clone(&prov));

    // Wait until the provider is healthy, fails before that, or the wait runs out (then it
    // counts as started; health events tell the rest).
    let outcome = tokio::time::timeout(
        first_health_wait(host.config.provider_health_interval),
        async {
            let healthy = health_rx.wait_for(|(h, _)| *h == ProviderHealth::Healthy);
            tokio::select! {
                reason = failed_rx => reason.ok(),
                _ = healthy => None,
            }
        },
    )
    .await;
    if let Ok(Some(reason)) = outcome {
        host.providers.remove(&prov.id);
        prov.stop(host.config.shutdown_timeout).await;
        host.events
            .publish(
                Event::ProviderStartFailed(ProviderStartFailed {
                    host_id: host.id.clone(),
                    provider_id: prov.id.clone(),
                    image: prov.image.clone(),
                    reason: reason.clone(),
                }),
                None,
            )
            .await;
        return Err(reason);
    }
    host.events
        .publish(
            Event::ProviderStarted(ProviderStarted {
                host_id: host.id.clone(),
                provider_id: prov.id.clone(),
                image: prov.image.clone(),
                annotations: prov.annotations.clone(),
            }),
            None,
        )
        .await;
    Ok(reply(host, &prov))
}

fn reply(host: &HostState, p: &RunningProvider) -> ProviderStartedReply {
    ProviderStartedReply {
        host_id: host.id.clone(),
        provider_id: p.id.clone(),
        image: p.image.clone(),
    }
}

/// Stops a provider and says so.
pub async fn stop(host: &Arc<HostState>, provider_id: &str) -> Result<(), String> {
    let Some(p) = host.providers.remove(provider_id) else {
        return Err(format!("provider {provider_id} does not run on this host"));
    };
    p.stop(host.config.shutdown_timeout).await;
    host.events
        .publish(
            Event::ProviderStopped(ProviderStopped {
                host_id: host.id.clone(),
                provider_id: provider_id.to_string(),
                reason: "stop requested".into(),
            }),
            None,
        )
        .await;
    Ok(())
}

enum Launch {
    Builtin(builtin::RunFn),
    Process(std::path::PathBuf),
}

/// Back-off between restarts: 500 ms doubling to 30 s.
fn restart_delay(attempt: u32) -> Duration {
    Duration::from_millis(500u64.saturating_mul(1 << attempt.min(6))).min(Duration::from_secs(30))
}

/// Announces a health change as an event.
async fn health_changed(
    host: &HostState,
    p: &RunningProvider,
    health: ProviderHealth,
    message: Option<String>,
) {
    if p.set_health(health, message.clone()) {
        tracing::info!(provider_id = %p.id, ?health, message = message.as_deref().unwrap_or(""), "provider health changed");
        host.events
            .publish(
                Event::ProviderHealthChanged(trellis_lattice::event::ProviderHealthChanged {
                    host_id: host.id.clone(),
                    provider_id: p.id.clone(),
                    health,
                    message,
                }),
                None,
            )
            .await;
    }
}
