//! The components a host runs: starting, rescaling, replacing and stopping them.

pub mod config;
mod serve;
mod writer;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use trellis_lattice::control::{ComponentScaled, ScaleComponent};
use trellis_lattice::inventory::{ComponentInfo, ComponentLimits};
use trellis_lattice::link::Config;

use crate::host::HostState;
use crate::runtime::{self, ComponentConfig, LoadedComponent};

/// Invocations that may wait for a free instance before new ones are turned away.
const MAX_QUEUED: usize = 1024;

/// One component running on this host.
pub struct RunningComponent {
    pub id: Arc<str>,
    pub loaded: LoadedComponent,
    limits: RwLock<ComponentLimits>,
    replicas: AtomicU32,
    /// One permit per replica: the most instances that run at once.
    permits: Arc<Semaphore>,
    queued: AtomicUsize,
    annotations: RwLock<BTreeMap<String, String>>,
    /// The named configs it reads through `wasi:config/store`, and their merged values.
    config: RwLock<(Vec<String>, ComponentConfig)>,
    started_at: DateTime<Utc>,
    cancel: CancellationToken,
    tracker: TaskTracker,
}

impl RunningComponent {
    pub fn limits(&self) -> ComponentLimits {
        self.limits.read().map(|l| *l).unwrap_or(ComponentLimits {
            max_memory_bytes: 64 << 20,
            timeout_ms: 10_000,
        })
    }

    /// The configuration new instances see.
    pub fn config(&self) -> ComponentConfig {
        self.config
            .read()
            .map(|c| Arc::clone(&c.1))
            .unwrap_or_default()
    }

    /// Whether it reads the named config `name`.
    pub fn uses_config(&self, name: &str) -> bool {
        self.config
            .read()
            .is_ok_and(|c| c.0.iter().any(|n| n == name))
    }

    /// Merges its named configs again from `configs` (a name that is gone contributes
    /// nothing), after one of them changed.
    pub fn remerge_config(&self, configs: &HashMap<String, Config>) {
        if let Ok(mut c) = self.config.write() {
            let mut merged = Config::new();
            for name in &c.0 {
                if let Some(values) = configs.get(name) {
                    merged.extend(values.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
            }
            c.1 = Arc::new(merged);
        }
    }

    pub fn replicas(&self) -> u32 {
        self.replicas.load(Ordering::Acquire)
    }

    pub fn info(&self) -> ComponentInfo {
        ComponentInfo {
            id: self.id.to_string(),
            image: self.loaded.image.clone(),
            digest: self.loaded.digest.clone(),
            replicas: self.replicas(),
            limits: self.limits(),
            annotations: self
                .annotations
                .read()
                .map(|a| a.clone())
                .unwrap_or_default(),
            imports: self.loaded.imports.clone(),
            exports: self.loaded.exports.clone(),
            started_at: self.started_at,
        }
    }

    /// Waits for a free instance slot (one of `replicas`), or says why there is none.
    pub async fn admit(self: &Arc<Self>) -> Result<tokio::sync::OwnedSemaphorePermit, String> {
        let queued = self.queued.fetch_add(1, Ordering::AcqRel);
        let permit = if queued >= MAX_QUEUED {
            None
        } else {
            Arc::clone(&self.permits).acquire_owned().await.ok()
        };
        self.queued.fetch_sub(1, Ordering::AcqRel);
        permit.ok_or_else(|| {
            if self.cancel.is_cancelled() {
                format!("component {} is stopping", self.id)
            } else {
                format!(
                    "component {} is busy ({MAX_QUEUED} invocations already wait for one of its {} instance(s))",
                    self.id,
                    self.replicas()
                )
            }
        })
    }

    /// Work that must finish before the component counts as stopped.
    pub fn tracker(&self) -> &TaskTracker {
        &self.tracker
    }

    fn set_replicas(&self, n: u32) {
        let old = self.replicas.swap(n, Ordering::AcqRel);
        if n > old {
            self.permits.add_permits((n - old) as usize);
        } else if n < old {
            let mut excess = (old - n) as usize;
            excess -= self.permits.forget_permits(excess);
            if excess > 0 {
                // Instances still running hold the rest; retire their permits as they finish.
                let permits = Arc::clone(&self.permits);
                tokio::spawn(async move {
                    if let Ok(p) = permits.acquire_many_owned(excess as u32).await {
                        p.forget();
                    }
                });
            }
        }
    }

    /// Stops taking invocations and waits (up to `timeout`) for those in flight, including
    /// those accepted and still waiting for an instance: a replaced copy drains instead of
    /// refusing them. Whatever still waits at the timeout is refused.
    pub async fn stop(&self, timeout: Duration) {
        self.cancel.cancel();
        self.tracker.close();
        if tokio::time::timeout(timeout, self.tracker.wait())
            .await
            .is_err()
        {
            self.permits.close();
            tracing::warn!(component_id = %self.id, "invocations still running after the stop timeout; abandoning them");
        }
    }
}

/// Every component of the host, by id.
#[derive(Default)]
pub struct Components {
    running: RwLock<HashMap<String, Arc<RunningComponent>>>,
    /// Scale requests for one id run one at a time.
    locks: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Components {
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

    pub fn count(&self) -> usize {
        self.running.read().map(|m| m.len()).unwrap_or(0)
    }

    fn lock_for(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(locks.entry(id.to_string()).or_default())
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
}

/// Carries out a scale request: start, rescale, replace (new image or limits) or stop.
pub async fn scale(host: &Arc<HostState>, req: &ScaleComponent) -> Result<ComponentScaled, String> {
    trellis_lattice::id::validate_component_id(&req.component_id).map_err(|e| e.to_string())?;
    let lock = host.components.lock_for(&req.component_id);
    let _serialized = lock.lock().await;
    let existing = host.components.get(&req.component_id);

    if req.replicas == 0 {
        let stopped = host.components.remove(&req.component_id);
        let (image, digest) = match &stopped {
            Some(c) => {
                c.stop(host.config.shutdown_timeout).await;
                (c.loaded.image.clone(), c.loaded.digest.clone())
            }
            None => (req.image.clone(), String::new()),
        };
        return Ok(scaled(host, &req.component_id, image, digest, 0));
    }

    let limits = runtime::limits(
        &host.defaults,
        host.runtime.memory_ceiling(),
        req.max_memory_bytes,
        req.timeout_ms,
    )?;

    if let Some(c) = &existing {
        if req.image.is_empty() || req.image == c.loaded.image {
            // A full start request (with the image) says which configs it reads; a bare
            // rescale keeps them.
            let names_changed = c.config.read().map_or(true, |cur| cur.0 != req.config);
            if !req.image.is_empty() && names_changed {
                let config = component_config(host, &req.config).await?;
                if let Ok(mut cur) = c.config.write() {
                    *cur = (req.config.clone(), config);
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
            }
            return Ok(scaled(
                host,
                &c.id,
                c.loaded.image.clone(),
                c.loaded.digest.clone(),
                req.replicas,
            ));
        }
    } else if req.image.is_empty() {
        return Err(format!(
            "component {} is not running on this host; give an image to start it",
            req.component_id
        ));
    }

    let config = component_config(host, &req.config).await?;
    let loaded = host
        .runtime
        .load(&req.image)
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(
        component_id = %req.component_id,
        image = %req.image,
        digest = %loaded.digest,
        cache = ?loaded.cache_hit,
        functions = loaded.functions.len(),
        "component loaded"
    );
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
        tracker: TaskTracker::new(),
    });
    serve::start(host, &comp)
        .await
        .map_err(|e| format!("cannot serve component {}: {e:#}", req.component_id))?;
    // The new instance serves in the same queue group before the old one leaves: no gap.
    if let Some(old) = host.components.insert(Arc::clone(&comp)) {
        let timeout = host.config.shutdown_timeout;
        tokio::spawn(async move { old.stop(timeout).await });
    }
    Ok(scaled(
        host,
        &comp.id,
        comp.loaded.image.clone(),
        comp.loaded.digest.clone(),
        req.replicas,
    ))
}

/// The merged named configs a component is started with; a missing name fails the start.
async fn component_config(host: &HostState, names: &[String]) -> Result<ComponentConfig, String> {
    if names.is_empty() {
        return Ok(ComponentConfig::default());
    }
    let store = host.store().await?;
    let merged = store
        .merged_config(names)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Arc::new(merged))
}

fn scaled(
    host: &HostState,
    id: &str,
    image: String,
    digest: String,
    replicas: u32,
) -> ComponentScaled {
    ComponentScaled {
        host_id: host.id.clone(),
        component_id: id.to_string(),
        image,
        digest,
        replicas,
    }
}
