//! The components a host runs: starting, rescaling, replacing and stopping them.
//!
//! - `running`: one running component; `serve`: serving its exports over the lattice;
//!   `config`: keeping its named config current; `writer`: its result streams.

pub mod config;
pub mod running;
mod serve;
pub mod stats;
mod throttle;
mod turns;
mod writer;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicUsize};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::Utc;
use futures::future::BoxFuture;
use futures::FutureExt as _;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use trellis_lattice::control::{ComponentScaled, ScaleComponent};
use trellis_lattice::inventory::ComponentLimits;
use trellis_lattice::{ControlError, Subjects};

pub use running::RunningComponent;
use turns::Turns;

use crate::control::parts::ComponentControl;
use crate::lattice_kv::StateStore;
use crate::runtime::{ComponentConfig, HostLimits, Linking, Runtime};

/// What the components part needs from the rest of the host.
pub struct ComponentsContext {
    pub host_id: String,
    pub runtime: Arc<Runtime>,
    pub linking: Linking,
    pub nats: async_nats::Client,
    /// The same connection, shared the way wRPC servers want it.
    pub nats_shared: Arc<async_nats::Client>,
    pub subjects: Subjects,
    /// Where named config is read at start.
    pub state: Arc<dyn StateStore>,
    /// What a start may ask for.
    pub limits: HostLimits,
    pub shutdown_timeout: Duration,
    /// The host's GPIO chips.
    pub chips: Arc<trellis_gpio::Chips>,
    /// Opens the sealed config values of what runs here.
    pub secrets: crate::secrets::HostSecrets,
    /// Which of the host's directories components may be given.
    pub grants: crate::runtime::grants::GrantPolicy,
    /// Whose signed components run here.
    pub issuers: crate::policy::IssuerPolicy,
}

/// Whether a component needs pins: it imports `wasi:gpio` or handles edges.
fn uses_gpio(loaded: &crate::runtime::LoadedComponent) -> bool {
    loaded.imports.iter().any(|i| i.starts_with("wasi:gpio/"))
        || loaded
            .functions
            .iter()
            .any(crate::gpio::edges::is_edge_handler)
}

/// Tells apart the running copies of one component id (see `trellis_gpio::chips`).
static COPIES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Every component of the host, by id.
pub struct Components {
    ctx: ComponentsContext,
    running: RwLock<HashMap<String, Arc<RunningComponent>>>,
    /// Scale requests for one id run one at a time.
    turns: Turns,
}

impl Components {
    pub fn new(ctx: ComponentsContext) -> Self {
        Self {
            ctx,
            running: RwLock::default(),
            turns: Turns::default(),
        }
    }

    pub fn get(&self, id: &str) -> Option<Arc<RunningComponent>> {
        self.running.read().ok()?.get(id).cloned()
    }

    pub fn all(&self) -> Vec<Arc<RunningComponent>> {
        let mut all: Vec<_> = self
            .running
            .read()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }

    fn insert(&self, comp: Arc<RunningComponent>) -> Option<Arc<RunningComponent>> {
        let mut running = self.running.write().unwrap_or_else(|p| p.into_inner());
        running.insert(comp.id.to_string(), comp)
    }

    fn remove(&self, id: &str) -> Option<Arc<RunningComponent>> {
        let mut running = self.running.write().unwrap_or_else(|p| p.into_inner());
        running.remove(id)
    }

    /// Stops serving every component at once, without waiting (a host dropped abruptly).
    pub fn cancel_all(&self) {
        let mut running = self.running.write().unwrap_or_else(|p| p.into_inner());
        for (_, c) in running.drain() {
            c.cancel.cancel();
            c.interrupt.cancel();
            c.permits.close();
        }
    }

    /// Stops every component (host shutdown), waiting for in-flight calls.
    pub async fn stop_all(&self, timeout: Duration) {
        let all: Vec<_> = {
            let mut running = self.running.write().unwrap_or_else(|p| p.into_inner());
            running.drain().map(|(_, c)| c).collect()
        };
        futures::future::join_all(all.iter().map(|c| c.stop(timeout))).await;
    }

    /// Carries out a scale request: start, rescale, replace (new image or limits) or stop.
    pub async fn scale(&self, req: &ScaleComponent) -> Result<ComponentScaled, ControlError> {
        trellis_lattice::id::validate_component_id(&req.component_id)
            .map_err(ControlError::from)?;
        let turn = self.turns.take(req).await?;
        let existing = self.get(&req.component_id);

        if req.replicas == 0 {
            let stopped = self.remove(&req.component_id);
            let (image, digest) = match &stopped {
                Some(c) => {
                    c.stop(self.ctx.shutdown_timeout).await;
                    (c.loaded.image.clone(), c.loaded.digest.clone())
                }
                None => (req.image.clone(), String::new()),
            };
            return Ok(self.scaled(&req.component_id, image, digest, 0));
        }

        let limits = self
            .ctx
            .limits
            .for_start(req.max_memory_bytes, req.timeout_ms)?;

        if let Some(c) = &existing {
            if (req.image.is_empty() || req.image == c.loaded.image)
                && self.pin_holds(c, req).await?
            {
                self.rescale(c, req, limits).await?;
                return Ok(self.scaled(
                    &c.id,
                    c.loaded.image.clone(),
                    c.loaded.digest.clone(),
                    req.replicas,
                ));
            }
        } else if req.image.is_empty() {
            return Err(ControlError::not_found(format!(
                "component {} is not running on this host; give an image to start it",
                req.component_id
            )));
        }

        let grants = self.ctx.grants.resolve(&req.grants).await?;
        let starting = turn.starting(&req.image);
        let load = async {
            let config = self.component_config(&req.config).await?;
            let check =
                crate::policy::ComponentCheck::new(&self.ctx.issuers, req.issuer.as_deref());
            let loaded = self.ctx.runtime.load_checked(&req.image, check).await?;
            Ok::<_, ControlError>((config, loaded))
        };
        let (config, loaded) = tokio::select! {
            loaded = load => loaded?,
            _ = starting.superseded() => {
                return Err(ControlError::conflict(format!(
                    "the start of {} from {} was superseded by a later request",
                    req.component_id, req.image
                )))
            }
        };
        drop(starting);
        tracing::info!(
            component_id = %req.component_id,
            image = %req.image,
            digest = %loaded.digest,
            cache = ?loaded.cache_hit,
            functions = loaded.functions.len(),
            "component loaded"
        );
        let gpio = uses_gpio(&loaded).then(|| {
            let copy = COPIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            crate::gpio::ComponentPins::new(
                format!("{}#{copy}", req.component_id).into(),
                Arc::clone(&self.ctx.chips),
                &config,
            )
        });
        let comp = Arc::new(RunningComponent {
            id: Arc::from(req.component_id.as_str()),
            loaded,
            limits: RwLock::new(limits),
            replicas: AtomicU32::new(req.replicas),
            permits: Arc::new(Semaphore::new(req.replicas as usize)),
            queued: AtomicUsize::new(0),
            annotations: RwLock::new(req.annotations.clone()),
            config: RwLock::new((req.config.clone(), config)),
            started_at: Utc::now(),
            cancel: CancellationToken::new(),
            interrupt: CancellationToken::new(),
            tracker: TaskTracker::new(),
            runtime: Arc::clone(&self.ctx.runtime),
            linking: self.ctx.linking.clone(),
            stats: Default::default(),
            meters: RwLock::new(None),
            gpio,
            grants: RwLock::new(grants),
        });
        let endpoint = serve::Endpoint {
            nats: &self.ctx.nats,
            nats_shared: &self.ctx.nats_shared,
            subjects: &self.ctx.subjects,
            host_id: &self.ctx.host_id,
        };
        serve::start(endpoint, &comp).await.map_err(|e| {
            ControlError::unavailable(format!(
                "cannot serve component {}: {e:#}",
                req.component_id
            ))
        })?;
        // The new instance serves in the same queue group before the old one leaves: no gap.
        if let Some(old) = self.insert(Arc::clone(&comp)) {
            // The new copy takes over the old one's lines now, not after its drain.
            if let Some(g) = &old.gpio {
                g.release_all();
            }
            let timeout = self.ctx.shutdown_timeout;
            tokio::spawn(async move { old.stop(timeout).await });
        }
        crate::gpio::edges::spawn(&comp);
        Ok(ComponentScaled {
            compiled: Some(comp.loaded.cache_hit.into()),
            ..self.scaled(
                &comp.id,
                comp.loaded.image.clone(),
                comp.loaded.digest.clone(),
                req.replicas,
            )
        })
    }

    /// Whether a start request's pinned issuer holds for the copy already running: its image
    /// is checked, and when the file changed since, the new bytes are to be loaded (and
    /// checked) in its place.
    async fn pin_holds(
        &self,
        c: &RunningComponent,
        req: &ScaleComponent,
    ) -> Result<bool, ControlError> {
        let pinned = req.issuer.as_deref().filter(|_| !req.image.is_empty());
        let Some(check) =
            pinned.and_then(|p| crate::policy::ComponentCheck::new(&self.ctx.issuers, Some(p)))
        else {
            return Ok(true);
        };
        let digest = self.ctx.runtime.check_image(&req.image, check).await?;
        Ok(digest == c.loaded.digest)
    }

    /// Changes what a running component's next instances get: replicas, limits, annotations,
    /// and (with a full start request) which configs it reads.
    async fn rescale(
        &self,
        c: &RunningComponent,
        req: &ScaleComponent,
        limits: ComponentLimits,
    ) -> Result<(), ControlError> {
        // A full start request (with the image) says which configs it reads; a bare rescale
        // keeps them.
        let names_changed = c.config.read().map_or(true, |cur| cur.0 != req.config);
        if !req.image.is_empty() && names_changed {
            let config = self.component_config(&req.config).await?;
            if let Some(g) = &c.gpio {
                g.regrant(&config);
            }
            if let Ok(mut cur) = c.config.write() {
                *cur = (req.config.clone(), config);
            }
        }
        if !req.image.is_empty() {
            let grants = self.ctx.grants.resolve(&req.grants).await?;
            if let Ok(mut cur) = c.grants.write() {
                *cur = grants;
            }
        }
        c.set_replicas(req.replicas);
        if req.max_memory_bytes.is_some() || req.timeout_ms.is_some() {
            if let Ok(mut l) = c.limits.write() {
                *l = limits;
            }
        }
        if !req.annotations.is_empty() {
            if let Ok(mut a) = c.annotations.write() {
                *a = req.annotations.clone();
            }
            c.annotations_changed();
        }
        Ok(())
    }

    /// The merged named configs a component is started with, secrets opened; a missing name
    /// or a secret this host cannot open fails the start.
    async fn component_config(&self, names: &[String]) -> Result<ComponentConfig, ControlError> {
        if names.is_empty() {
            return Ok(ComponentConfig::default());
        }
        Ok(Arc::new(
            self.ctx
                .secrets
                .merged(&*self.ctx.state, names)
                .await?
                .into(),
        ))
    }

    /// Opens the sealed config of the components here.
    pub fn secrets(&self) -> &crate::secrets::HostSecrets {
        &self.ctx.secrets
    }

    fn scaled(&self, id: &str, image: String, digest: String, replicas: u32) -> ComponentScaled {
        ComponentScaled {
            host_id: self.ctx.host_id.clone(),
            component_id: id.to_string(),
            image,
            digest,
            replicas,
            annotations: Default::default(),
            compiled: None,
        }
    }
}

impl ComponentControl for Components {
    fn scale(&self, req: ScaleComponent) -> BoxFuture<'_, Result<ComponentScaled, ControlError>> {
        async move { Components::scale(self, &req).await }.boxed()
    }

    fn is_running(&self, id: &str) -> bool {
        self.get(id).is_some()
    }

    fn imports_of(&self, id: &str) -> Option<Vec<String>> {
        self.get(id).map(|c| c.loaded.imports.clone())
    }

    fn count(&self) -> usize {
        self.running.read().map(|m| m.len()).unwrap_or(0)
    }
}
