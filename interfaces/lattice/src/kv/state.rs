//! The lattice's links and config as one process reads them: from the store (in the hub's
//! JetStream, perhaps across a leaf connection) once it opens; while it cannot, from the
//! copy its host keeps on disk, so an edge cut off from the hub (and restarted while cut off)
//! still knows its links and config.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::FutureExt as _;
use serde::{Deserialize, Serialize};

use super::{Configs, Followed, LatticeStore, Mirror, StateChange};
use crate::error::{Error, Result};
use crate::link::{Config, Link, LinkKey};
use crate::subject::Subjects;

/// How long opening the store may take before a reader falls back to the copy. A leaf cut
/// from its hub answers "no responders" at once; this bounds a link that hangs instead.
pub const OPEN_PATIENCE: Duration = Duration::from_secs(2);

/// The largest copy read back (a copy holds only what one host uses).
const MAX_COPY_BYTES: u64 = 16 << 20;

/// What a copy file holds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedState {
    /// The lattice it is a copy of (a copy of another lattice's is not used).
    #[serde(default)]
    pub lattice: String,
    pub links: Vec<Link>,
    pub configs: Configs,
}

/// A copy of links and configs in a file its host writes (atomically, by rename) and its
/// providers read.
#[derive(Clone, Debug)]
pub struct StateCopy {
    path: PathBuf,
}

impl StateCopy {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The saved state, `None` when there is none or it cannot be read (logged). Blocking:
    /// call from a blocking thread.
    pub fn load_blocking(&self) -> Option<SavedState> {
        let bytes = match crate::image::local::read_blocking(&self.path, MAX_COPY_BYTES) {
            Ok(bytes) => bytes,
            Err(err) => {
                if self.path.exists() {
                    tracing::warn!(path = %self.path.display(), %err, "cannot read the saved lattice state");
                }
                return None;
            }
        };
        match serde_json::from_slice(&bytes) {
            Ok(state) => Some(state),
            Err(err) => {
                // Not echoed: the file could hold anything.
                tracing::warn!(path = %self.path.display(), line = err.line(), "the saved lattice state is not valid; ignoring it");
                None
            }
        }
    }

    pub async fn load(&self) -> Option<SavedState> {
        let copy = self.clone();
        tokio::task::spawn_blocking(move || copy.load_blocking())
            .await
            .ok()
            .flatten()
    }

    /// Replaces the copy in one rename, readable only by this user. Blocking.
    pub fn save_blocking(&self, state: &SavedState) -> std::io::Result<()> {
        let bytes = serde_json::to_vec(state).map_err(std::io::Error::other)?;
        crate::image::local::write_private_atomically(&self.path, &bytes)
    }
}

/// Links and config of a lattice: the store when it opens, else the copy.
#[derive(Clone)]
pub struct LatticeState {
    nats: async_nats::Client,
    subjects: Subjects,
    store: Arc<tokio::sync::OnceCell<LatticeStore>>,
    copy: Option<StateCopy>,
}

impl LatticeState {
    pub fn new(nats: async_nats::Client, subjects: Subjects, copy: Option<StateCopy>) -> Self {
        Self {
            nats,
            subjects,
            store: Arc::default(),
            copy,
        }
    }

    pub fn subjects(&self) -> &Subjects {
        &self.subjects
    }

    /// The store, opening it on first use (bounded by [`OPEN_PATIENCE`]).
    pub async fn store(&self) -> Result<&LatticeStore> {
        self.store
            .get_or_try_init(|| async {
                tokio::time::timeout(
                    OPEN_PATIENCE,
                    LatticeStore::open(&self.nats, &self.subjects),
                )
                .await
                .map_err(|_| {
                    Error::nats("the lattice store did not answer (is the hub reachable?)")
                })?
            })
            .await
    }

    async fn saved(&self) -> Option<SavedState> {
        let saved = match &self.copy {
            Some(copy) => copy.load().await?,
            None => return None,
        };
        (saved.lattice == self.subjects.lattice()).then_some(saved)
    }

    /// Every link and config now: from the store, else (saying so in the log) the copy.
    pub async fn snapshot(&self) -> Result<(Vec<Link>, Configs)> {
        let read = async {
            let store = self.store().await?;
            Ok::<_, Error>((store.links().await?, store.configs().await?))
        };
        match read.await {
            Ok(state) => Ok(state),
            Err(err) => match self.saved().await {
                Some(saved) => {
                    tracing::warn!(%err, "lattice store unreachable; using the saved copy of links and config");
                    Ok((saved.links, saved.configs))
                }
                None => Err(err),
            },
        }
    }

    /// [`Self::snapshot`] as a [`Mirror`].
    pub async fn mirror(&self) -> Result<Mirror> {
        let (links, configs) = self.snapshot().await?;
        Ok(Mirror::from_snapshot(links, configs))
    }

    pub async fn link(&self, key: &LinkKey) -> Result<Option<Link>> {
        let read = async { self.store().await?.link(key).await };
        match read.await {
            Ok(link) => Ok(link),
            Err(err) => match self.saved().await {
                Some(saved) => Ok(saved.links.into_iter().find(|l| &l.key() == key)),
                None => Err(err),
            },
        }
    }

    pub async fn config(&self, name: &str) -> Result<Option<Config>> {
        let read = async { self.store().await?.config(name).await };
        match read.await {
            Ok(config) => Ok(config),
            Err(err) => match self.saved().await {
                Some(mut saved) => Ok(saved.configs.remove(name)),
                None => Err(err),
            },
        }
    }

    /// Links and configs to [`super::follow`]: each attempt opens the store if it is not open
    /// yet, so the follower keeps trying until the hub is reachable.
    pub fn followed(&self) -> FollowedState {
        FollowedState(self.clone())
    }
}

/// [`LatticeState`] as a [`Followed`] source.
pub struct FollowedState(LatticeState);

impl Followed for FollowedState {
    type Snapshot = (Vec<Link>, Configs);
    type Change = StateChange;

    fn snapshot(&self) -> BoxFuture<'_, Result<(Vec<Link>, Configs)>> {
        async move { self.0.store().await?.state_followed().snapshot().await }.boxed()
    }

    fn changes(&self) -> BoxFuture<'_, Result<BoxStream<'static, StateChange>>> {
        async move { self.0.store().await?.state_followed().changes().await }.boxed()
    }

    fn partitioned(&self) -> BoxFuture<'_, bool> {
        // Asked before the store was ever opened too: a host that started cut off.
        async move {
            let probe = self.0.subjects.js_domain_probe();
            super::partition::cut_off(&self.0.nats, probe.as_deref()).await
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_round_trips_and_garbage_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let copy = StateCopy::new(dir.path().join("copy.json"));
        assert_eq!(copy.load_blocking(), None, "no file yet");
        let mut configs = Configs::new();
        configs.insert("c".into(), [("k".to_string(), "v".to_string())].into());
        let state = SavedState {
            lattice: "l".into(),
            links: vec![],
            configs,
        };
        copy.save_blocking(&state).unwrap();
        assert_eq!(copy.load_blocking(), Some(state));
        std::fs::write(copy.path(), b"secret-looking garbage").unwrap();
        assert_eq!(copy.load_blocking(), None);
    }
}
