//! The workload a host was last told to run, saved after every change that succeeded and
//! replayed when it starts again: an edge host that loses power while cut off from the hub
//! runs its components and providers again without the manager (which reconciles against
//! them once the link returns, finding nothing to start twice).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use futures::FutureExt as _;
use serde::{Deserialize, Serialize};
use trellis_lattice::control::{
    ComponentScaled, ProviderStartedReply, ScaleComponent, StartProvider,
};
use trellis_lattice::ControlError;

use crate::control::parts::{ComponentControl, ProviderControl};

/// The largest workload file read back.
const MAX_WORKLOAD_BYTES: u64 = 16 << 20;

/// What `workload.json` holds: the requests that made the workload, by id.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    /// Whose workload it is: a state directory used with another lattice or key (`trellis
    /// up` and a plain host share the default one) does not hand this one on.
    #[serde(default)]
    pub lattice: String,
    #[serde(default)]
    pub host_id: String,
    pub components: BTreeMap<String, ScaleComponent>,
    pub providers: BTreeMap<String, StartProvider>,
}

impl Workload {
    /// The ids of everything in it.
    pub fn ids(&self) -> BTreeSet<String> {
        self.components
            .keys()
            .chain(self.providers.keys())
            .cloned()
            .collect()
    }

    /// The named configs it reads itself (links add theirs).
    pub fn config_names(&self) -> BTreeSet<String> {
        self.components
            .values()
            .flat_map(|c| c.config.iter())
            .chain(self.providers.values().flat_map(|p| p.config.iter()))
            .cloned()
            .collect()
    }
}

/// The saved workload, in memory and on disk.
pub struct SavedWorkload {
    path: Option<PathBuf>,
    current: Mutex<Workload>,
    // One write at a time, in the order the changes happened.
    writing: tokio::sync::Mutex<()>,
    changed: tokio::sync::watch::Sender<()>,
}

impl SavedWorkload {
    /// The workload saved at `path` (empty when there is none or it cannot be read); `None`
    /// keeps it in memory only (an ephemeral host).
    pub async fn load(path: Option<PathBuf>, lattice: &str, host_id: &str) -> Arc<Self> {
        let read = match path.clone() {
            Some(path) => tokio::task::spawn_blocking(move || read(&path))
                .await
                .ok()
                .flatten(),
            None => None,
        };
        let current = match read {
            Some(w) if w.lattice == lattice && w.host_id == host_id => w,
            Some(w) => {
                tracing::warn!(
                    saved_lattice = %w.lattice,
                    saved_host = %w.host_id,
                    "the saved workload is another lattice's or another host's; not restoring it"
                );
                Workload::default()
            }
            None => Workload::default(),
        };
        let current = Workload {
            lattice: lattice.to_string(),
            host_id: host_id.to_string(),
            ..current
        };
        Arc::new(Self {
            path,
            current: Mutex::new(current),
            writing: tokio::sync::Mutex::new(()),
            changed: tokio::sync::watch::channel(()).0,
        })
    }

    pub fn get(&self) -> Workload {
        match self.current.lock() {
            Ok(w) => w.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Told on every change (the lattice copy follows what the workload uses).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<()> {
        self.changed.subscribe()
    }

    async fn change(&self, f: impl FnOnce(&mut Workload)) {
        let _turn = self.writing.lock().await;
        let snapshot = {
            let mut w = match self.current.lock() {
                Ok(w) => w,
                Err(poisoned) => poisoned.into_inner(),
            };
            f(&mut w);
            w.clone()
        };
        self.changed.send_replace(());
        let Some(path) = self.path.clone() else {
            return;
        };
        let written = tokio::task::spawn_blocking(move || {
            let bytes = serde_json::to_vec_pretty(&snapshot).map_err(std::io::Error::other)?;
            trellis_lattice::image::local::write_private_atomically(&path, &bytes)
        })
        .await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                tracing::warn!(%err, "cannot save the workload; a restart will not restore this change")
            }
            Err(err) => tracing::warn!(%err, "saving the workload failed"),
        }
    }

    async fn scaled(&self, req: &ScaleComponent, done: &ComponentScaled) {
        self.change(|w| {
            if done.replicas == 0 {
                w.components.remove(&req.component_id);
                return;
            }
            let mut saved = req.clone();
            // A rescale without an image keeps the one it runs.
            if saved.image.is_empty() {
                saved.image = done.image.clone();
            }
            saved.replicas = done.replicas;
            w.components.insert(req.component_id.clone(), saved);
        })
        .await
    }
}

fn read(path: &std::path::Path) -> Option<Workload> {
    let bytes = match trellis_lattice::image::local::read_blocking(path, MAX_WORKLOAD_BYTES) {
        Ok(bytes) => bytes,
        Err(err) if err.is_not_found() => return None,
        Err(err) => {
            tracing::warn!(%err, "cannot read the saved workload; starting without it");
            return None;
        }
    };
    match serde_json::from_slice(&bytes) {
        Ok(w) => Some(w),
        Err(err) => {
            tracing::warn!(path = %path.display(), line = err.line(), "the saved workload is not valid; starting without it");
            None
        }
    }
}

/// The host's components, remembering each change that succeeded.
pub struct RememberedComponents {
    pub inner: Arc<dyn ComponentControl>,
    pub saved: Arc<SavedWorkload>,
}

impl ComponentControl for RememberedComponents {
    fn scale(&self, req: ScaleComponent) -> BoxFuture<'_, Result<ComponentScaled, ControlError>> {
        async move {
            let done = self.inner.scale(req.clone()).await?;
            self.saved.scaled(&req, &done).await;
            Ok(done)
        }
        .boxed()
    }

    fn is_running(&self, id: &str) -> bool {
        self.inner.is_running(id)
    }

    fn imports_of(&self, id: &str) -> Option<Vec<String>> {
        self.inner.imports_of(id)
    }

    fn count(&self) -> usize {
        self.inner.count()
    }
}

/// The host's providers, remembering each start and stop that succeeded.
pub struct RememberedProviders {
    pub inner: Arc<dyn ProviderControl>,
    pub saved: Arc<SavedWorkload>,
}

impl ProviderControl for RememberedProviders {
    fn start(
        &self,
        req: StartProvider,
    ) -> BoxFuture<'_, Result<(ProviderStartedReply, bool), ControlError>> {
        async move {
            let started = self.inner.start(req.clone()).await?;
            let id = req.provider_id.clone();
            self.saved
                .change(|w| {
                    w.providers.insert(id, req);
                })
                .await;
            Ok(started)
        }
        .boxed()
    }

    fn stop<'a>(&'a self, provider_id: &'a str) -> BoxFuture<'a, Result<(), ControlError>> {
        async move {
            self.inner.stop(provider_id).await?;
            self.saved
                .change(|w| {
                    w.providers.remove(provider_id);
                })
                .await;
            Ok(())
        }
        .boxed()
    }

    fn is_running(&self, id: &str) -> bool {
        self.inner.is_running(id)
    }

    fn count(&self) -> usize {
        self.inner.count()
    }
}

/// Starts what the saved workload holds and is not running yet: providers first (a
/// component's first calls find them), then components. A start that fails stays saved (the
/// manager, or the next restart, tries again) and is logged.
pub async fn restore(
    saved: &SavedWorkload,
    components: &dyn ComponentControl,
    providers: &dyn ProviderControl,
) -> usize {
    let workload = saved.get();
    let mut restored = 0;
    for (id, req) in workload.providers {
        if providers.is_running(&id) {
            continue;
        }
        match providers.start(req).await {
            Ok(_) => restored += 1,
            Err(err) => tracing::warn!(provider_id = %id, %err, "cannot restore a saved provider"),
        }
    }
    for (id, req) in workload.components {
        if components.is_running(&id) {
            continue;
        }
        match components.scale(req).await {
            Ok(_) => restored += 1,
            Err(err) => {
                tracing::warn!(component_id = %id, %err, "cannot restore a saved component")
            }
        }
    }
    restored
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scale(id: &str, image: &str, replicas: u32) -> ScaleComponent {
        ScaleComponent {
            component_id: id.into(),
            image: image.into(),
            replicas,
            config: vec!["c".into()],
            max_memory_bytes: None,
            timeout_ms: None,
            annotations: BTreeMap::new(),
            ..Default::default()
        }
    }

    fn scaled(id: &str, image: &str, replicas: u32) -> ComponentScaled {
        ComponentScaled {
            host_id: "h".into(),
            component_id: id.into(),
            image: image.into(),
            digest: String::new(),
            replicas,
            annotations: BTreeMap::new(),
            compiled: None,
        }
    }

    #[tokio::test]
    async fn changes_are_saved_and_read_back_and_a_stop_forgets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("workload.json");
        let saved = SavedWorkload::load(Some(path.clone()), "l", "h").await;
        saved
            .scaled(&scale("a", "/x/a.wasm", 2), &scaled("a", "/x/a.wasm", 2))
            .await;
        saved
            .scaled(&scale("b", "/x/b.wasm", 1), &scaled("b", "/x/b.wasm", 1))
            .await;
        // A rescale without an image keeps the image it runs.
        saved
            .scaled(&scale("a", "", 3), &scaled("a", "/x/a.wasm", 3))
            .await;
        saved.scaled(&scale("b", "", 0), &scaled("b", "", 0)).await;
        let again = SavedWorkload::load(Some(path.clone()), "l", "h")
            .await
            .get();
        assert!(
            SavedWorkload::load(Some(path.clone()), "other", "h")
                .await
                .get()
                .ids()
                .is_empty(),
            "another lattice's workload is not restored"
        );
        assert_eq!(again.ids(), BTreeSet::from(["a".to_string()]));
        assert_eq!(again.components["a"].image, "/x/a.wasm");
        assert_eq!(again.components["a"].replicas, 3);
        assert_eq!(again.config_names(), BTreeSet::from(["c".to_string()]));
        std::fs::write(&path, b"{ not json").unwrap();
        assert!(SavedWorkload::load(Some(path), "l", "h")
            .await
            .get()
            .ids()
            .is_empty());
    }
}
