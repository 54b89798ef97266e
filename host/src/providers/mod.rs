//! Capability providers this host supervises: built into the host, or external executables
//! it spawns, restarts with back-off, and checks for health.
//!
//! - `context`: what the part needs from the host; `running`: one provider instance.
//! - `builtin`: providers compiled in; `process`: external executables; `health`: checks;
//!   `allow`: which executables the operator allowed, and as whom they run.

pub mod allow;
mod builtin;
pub mod context;
mod health;
mod process;
mod running;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::Utc;
use futures::future::BoxFuture;
use futures::FutureExt as _;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use trellis_lattice::control::{ProviderStartedReply, StartProvider};
use trellis_lattice::image::{ImageRef, ImageSource};
use trellis_lattice::inventory::ProviderHealth;
use trellis_lattice::ControlError;

pub use context::ProvidersContext;
pub use running::RunningProvider;

use crate::control::parts::ProviderControl;

/// How long a start request waits for the provider's first healthy answer: a few health
/// intervals, at least 2 s, at most 10 s.
fn first_health_wait(interval: Duration) -> Duration {
    (interval * 4).clamp(Duration::from_secs(2), Duration::from_secs(10))
}

/// Every provider of the host, by id.
pub struct Providers {
    ctx: Arc<ProvidersContext>,
    running: RwLock<HashMap<String, Arc<RunningProvider>>>,
    starting: tokio::sync::Mutex<()>,
}

enum Launch {
    Builtin(builtin::RunFn),
    Process(std::path::PathBuf),
}

impl Providers {
    pub fn new(ctx: ProvidersContext) -> Self {
        Self {
            ctx: Arc::new(ctx),
            running: RwLock::default(),
            starting: Default::default(),
        }
    }

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

    /// Starts a provider and waits for its first health answer (or its failure); false with
    /// the reply when it already ran here from the same image.
    pub async fn start(
        &self,
        req: StartProvider,
    ) -> Result<(ProviderStartedReply, bool), ControlError> {
        trellis_lattice::id::validate_component_id(&req.provider_id).map_err(ControlError::from)?;
        let _one_at_a_time = self.starting.lock().await;
        if let Some(p) = self.get(&req.provider_id) {
            if p.image == req.image {
                return Ok((self.reply(&p), false));
            }
            return Err(ControlError::conflict(format!(
                "provider {} already runs here from {}; stop it first to start {}",
                req.provider_id, p.image, req.image
            )));
        }
        if !req.config.is_empty() {
            // Also refuses a provider whose secrets this host cannot open.
            self.ctx
                .secrets
                .merged(&*self.ctx.state, &req.config)
                .await?;
        }
        let reference =
            ImageRef::parse(&req.image).map_err(|e| ControlError::invalid(e.to_string()))?;
        let launch = match &reference.source {
            ImageSource::Builtin(name) => {
                builtin::lookup(name).map(Launch::Builtin).ok_or_else(|| {
                    ControlError::not_found(format!(
                        "no built-in provider named {name} (built in: {})",
                        builtin::names().join(", ")
                    ))
                })?
            }
            _ => Launch::Process(process::prepare(&self.ctx, &reference).await?),
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
        let ctx = Arc::clone(&self.ctx);
        match launch {
            Launch::Builtin(run) => {
                prov.tasks.spawn(builtin::supervise(
                    Arc::clone(&ctx),
                    Arc::clone(&prov),
                    run,
                    failed_tx,
                ));
            }
            Launch::Process(exe) => {
                prov.tasks.spawn(process::supervise(
                    Arc::clone(&ctx),
                    Arc::clone(&prov),
                    exe,
                    failed_tx,
                ));
            }
        }
        prov.tasks.spawn(health::watch(ctx, Arc::clone(&prov)));
        self.running
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(prov.id.clone(), Arc::clone(&prov));

        // Wait until the provider is healthy, fails before that, or the wait runs out (then it
        // counts as started; health events tell the rest).
        let outcome = tokio::time::timeout(first_health_wait(self.ctx.health_interval), async {
            let healthy = health_rx.wait_for(|(h, _)| *h == ProviderHealth::Healthy);
            tokio::select! {
                reason = failed_rx => reason.ok(),
                _ = healthy => None,
            }
        })
        .await;
        if let Ok(Some(reason)) = outcome {
            self.remove(&prov.id);
            prov.stop(self.ctx.shutdown_timeout).await;
            return Err(ControlError::internal(reason));
        }
        Ok((self.reply(&prov), true))
    }

    fn reply(&self, p: &RunningProvider) -> ProviderStartedReply {
        ProviderStartedReply {
            host_id: self.ctx.host_id.clone(),
            provider_id: p.id.clone(),
            image: p.image.clone(),
        }
    }

    /// Stops a provider.
    pub async fn stop(&self, provider_id: &str) -> Result<(), ControlError> {
        let Some(p) = self.remove(provider_id) else {
            return Err(ControlError::not_found(format!(
                "provider {provider_id} does not run on this host"
            )));
        };
        p.stop(self.ctx.shutdown_timeout).await;
        Ok(())
    }
}

impl ProviderControl for Providers {
    fn start(
        &self,
        req: StartProvider,
    ) -> BoxFuture<'_, Result<(ProviderStartedReply, bool), ControlError>> {
        Providers::start(self, req).boxed()
    }

    fn stop<'a>(&'a self, provider_id: &'a str) -> BoxFuture<'a, Result<(), ControlError>> {
        Providers::stop(self, provider_id).boxed()
    }

    fn is_running(&self, id: &str) -> bool {
        self.get(id).is_some()
    }

    fn count(&self) -> usize {
        self.running.read().map(|m| m.len()).unwrap_or(0)
    }
}
