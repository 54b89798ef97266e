//! Compiled components, cached on disk by digest (so a restart does not recompile), in
//! memory while any running component uses them (so copies of one image share code), and,
//! with a lattice key, in the lattice's shared store (so one host compiles for all of the
//! same kind; see `shared`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use wasmtime::component::Component;
use wasmtime::Engine;

use super::shared::{Lookup, SharedArtifacts};

/// Where the compiled artifact came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheHit {
    /// Already loaded by another running component.
    Memory,
    /// Deserialized from the on-disk cache.
    Disk,
    /// Compiled and signed by another host of the lattice.
    Lattice,
    /// Compiled now.
    Compiled,
}

impl From<CacheHit> for trellis_lattice::control::CompiledFrom {
    fn from(hit: CacheHit) -> Self {
        match hit {
            CacheHit::Memory => Self::Memory,
            CacheHit::Disk => Self::Disk,
            CacheHit::Lattice => Self::Lattice,
            CacheHit::Compiled => Self::Compiled,
        }
    }
}

/// Why no compiled component could be had.
#[derive(Debug, thiserror::Error)]
pub enum GetError {
    #[error(transparent)]
    Compile(#[from] wasmtime::Error),
    /// This host was built without a compiler and has no artifact it may load (`why`).
    #[cfg_attr(feature = "compiler", allow(dead_code))]
    #[error("no artifact for this host's fingerprint {fingerprint}: {why}")]
    NotPrecompiled { fingerprint: String, why: String },
}

/// Why neither disk nor lattice had an artifact to load.
struct Miss {
    /// Whether what this host compiles should be published (the lattice has none, or one
    /// that must not be used); a host without a compiler has nothing to publish.
    #[cfg_attr(not(feature = "compiler"), allow(dead_code))]
    publish: bool,
    why: String,
}

impl Miss {
    fn new(publish: bool, why: impl Into<String>) -> Self {
        Self {
            publish,
            why: why.into(),
        }
    }
}

type Loaded = Arc<Mutex<HashMap<String, (Component, usize)>>>;

pub struct ArtifactCache {
    dir: PathBuf,
    fingerprint: String,
    loaded: Loaded,
    /// Artifacts being written to disk (and published) after their component started.
    writes: tokio_util::task::TaskTracker,
    shared: OnceLock<Arc<SharedArtifacts>>,
}

/// Keeps a compiled component in the memory cache while held.
pub struct Lease {
    digest: String,
    loaded: Loaded,
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Ok(mut loaded) = self.loaded.lock() {
            if let Some((_, users)) = loaded.get_mut(&self.digest) {
                *users -= 1;
                if *users == 0 {
                    loaded.remove(&self.digest);
                }
            }
        }
    }
}

fn blocking_failed(e: tokio::task::JoinError) -> wasmtime::Error {
    wasmtime::Error::msg(format!("compile task failed: {e}"))
}

impl ArtifactCache {
    /// A cache under `root`, in a directory named by the engine's `fingerprint` (see
    /// `fingerprint`), so artifacts of another wasmtime version or configuration are never
    /// loaded.
    pub fn new(root: &Path, fingerprint: String) -> Self {
        Self {
            dir: root.join("compiled").join(&fingerprint[..16]),
            fingerprint,
            loaded: Arc::default(),
            writes: tokio_util::task::TaskTracker::new(),
            shared: OnceLock::new(),
        }
    }

    /// Looks for artifacts in the lattice's shared store (and publishes there) from now on.
    pub fn share(&self, shared: SharedArtifacts) {
        let _ = self.shared.set(Arc::new(shared));
    }

    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Waits (at most `timeout`) for artifacts still being written, so a host that stops
    /// gracefully never leaves a compile to be redone after its restart.
    pub async fn finish_writes(&self, timeout: std::time::Duration) -> bool {
        self.writes.close();
        let done = tokio::time::timeout(timeout, self.writes.wait())
            .await
            .is_ok();
        self.writes.reopen();
        done
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn lease(&self, digest: &str, component: &Component) -> Lease {
        if let Ok(mut loaded) = self.loaded.lock() {
            loaded
                .entry(digest.to_string())
                .or_insert_with(|| (component.clone(), 0))
                .1 += 1;
        }
        Lease {
            digest: digest.to_string(),
            loaded: Arc::clone(&self.loaded),
        }
    }

    /// The compiled component for `bytes` (whose sha256 is `digest`), from memory, disk, the
    /// lattice, or compiled now (then written to disk, and published, in the background).
    pub async fn get(
        &self,
        engine: &Engine,
        bytes: Vec<u8>,
        digest: &str,
    ) -> Result<(Component, Lease, CacheHit), GetError> {
        let in_memory = self
            .loaded
            .lock()
            .ok()
            .and_then(|l| l.get(digest).map(|(c, _)| c.clone()));
        if let Some(component) = in_memory {
            let lease = self.lease(digest, &component);
            return Ok((component, lease, CacheHit::Memory));
        }
        let path = self.dir.join(format!("{digest}.cwasm"));
        match self.load(engine, &path, digest).await? {
            Ok((component, hit)) => {
                let lease = self.lease(digest, &component);
                Ok((component, lease, hit))
            }
            Err(miss) => self.compile(engine, bytes, digest, path, miss).await,
        }
    }

    /// A host built without a compiler loads only what was precompiled for it.
    #[cfg(not(feature = "compiler"))]
    async fn compile(
        &self,
        _: &Engine,
        _: Vec<u8>,
        _: &str,
        _: PathBuf,
        miss: Miss,
    ) -> Result<(Component, Lease, CacheHit), GetError> {
        Err(GetError::NotPrecompiled {
            fingerprint: self.fingerprint.clone(),
            why: miss.why,
        })
    }

    /// Compiles now; writes the artifact to disk (and publishes it) in the background.
    #[cfg(feature = "compiler")]
    async fn compile(
        &self,
        engine: &Engine,
        bytes: Vec<u8>,
        digest: &str,
        path: PathBuf,
        miss: Miss,
    ) -> Result<(Component, Lease, CacheHit), GetError> {
        tracing::debug!(digest, why = %miss.why, "compiling");
        let publish = miss.publish;
        let compiling = engine.clone();
        let component = tokio::task::spawn_blocking(move || Component::new(&compiling, &bytes))
            .await
            .map_err(blocking_failed)??;
        // Written after the component is ready rather than before: serializing and writing
        // the artifact costs the first call several milliseconds and nobody waits for it.
        let (dir, serialize) = (self.dir.clone(), component.clone());
        let shared = self.shared.get().filter(|_| publish).cloned();
        let (fingerprint, published) = (self.fingerprint.clone(), digest.to_string());
        self.writes.spawn(async move {
            let stored = tokio::task::spawn_blocking(move || {
                let artifact = serialize
                    .serialize()
                    .map_err(|e| anyhow::anyhow!("serialize: {e}"))?;
                store(&dir, &path, &artifact)?;
                Ok::<_, anyhow::Error>(artifact)
            })
            .await;
            match stored {
                Ok(Ok(artifact)) => {
                    if let Some(shared) = shared {
                        shared.publish(&fingerprint, &published, artifact).await;
                    }
                }
                Ok(Err(err)) => {
                    tracing::warn!(error = %err, "cannot write the compiled-component cache")
                }
                Err(err) => tracing::warn!(error = %err, "writing a compiled artifact failed"),
            }
        });
        let lease = self.lease(digest, &component);
        Ok((component, lease, CacheHit::Compiled))
    }

    /// The artifact from disk, else from the lattice (kept on disk too), else why not.
    async fn load(
        &self,
        engine: &Engine,
        path: &Path,
        digest: &str,
    ) -> Result<Result<(Component, CacheHit), Miss>, wasmtime::Error> {
        let (reading, read_path) = (engine.clone(), path.to_path_buf());
        let on_disk = tokio::task::spawn_blocking(move || load_file(&reading, &read_path))
            .await
            .map_err(blocking_failed)?;
        if let Some(component) = on_disk {
            return Ok(Ok((component, CacheHit::Disk)));
        }
        let Some(shared) = self.shared.get() else {
            return Ok(Err(Miss::new(
                false,
                "the host shares no artifacts with the lattice (no lattice key given)",
            )));
        };
        let artifact = match shared.fetch(&self.fingerprint, digest).await {
            Lookup::Found(artifact) => artifact,
            Lookup::Missing => {
                return Ok(Err(Miss::new(shared.can_publish(), "the lattice has none")))
            }
            Lookup::Rejected(why) => {
                return Ok(Err(Miss::new(
                    shared.can_publish(),
                    format!("the lattice's artifact is refused: {why}"),
                )))
            }
            Lookup::Unreachable => {
                return Ok(Err(Miss::new(
                    false,
                    "the lattice's artifact store is unreachable",
                )))
            }
        };
        let reading = engine.clone();
        let loaded = tokio::task::spawn_blocking(move || {
            // SAFETY: the bytes carry a trusted lattice key's signature over exactly them, this
            // engine's fingerprint and this component's digest (`shared::verify`); wasmtime
            // still checks the header, version and settings.
            let component = unsafe { Component::deserialize(&reading, &artifact) };
            (component, artifact)
        })
        .await
        .map_err(blocking_failed)?;
        match loaded {
            (Ok(component), artifact) => {
                // Kept on disk for the next start, after this one.
                let (dir, path) = (self.dir.clone(), path.to_path_buf());
                self.writes.spawn_blocking(move || {
                    if let Err(err) = store(&dir, &path, &artifact) {
                        tracing::warn!(error = %err, "cannot keep a shared artifact on disk");
                    }
                });
                Ok(Ok((component, CacheHit::Lattice)))
            }
            // Signed by the lattice yet not loadable here (another CPU's features, say): the
            // publisher's artifact stays for the hosts it suits.
            (Err(err), _) => {
                tracing::warn!(error = %err, "a shared artifact does not load here");
                Ok(Err(Miss::new(
                    false,
                    format!("the lattice's artifact does not load here: {err:#}"),
                )))
            }
        }
    }
}

/// The artifact at `path`, if there is one this engine can load; one it cannot is removed.
fn load_file(engine: &Engine, path: &Path) -> Option<Component> {
    if !path.exists() {
        return None;
    }
    // SAFETY: files in this directory are only written by `store` below, with bytes this
    // host serialized or that carry a lattice key's signature over them (checked before they
    // are loaded and written), for this engine's fingerprint (the directory's name), and
    // replaced atomically by rename. wasmtime still checks the header, version and settings.
    match unsafe { Component::deserialize_file(engine, path) } {
        Ok(component) => Some(component),
        Err(err) => {
            tracing::warn!(path = %path.display(), error = %err, "discarding unusable cached artifact");
            let _ = std::fs::remove_file(path);
            None
        }
    }
}

fn store(dir: &Path, path: &Path, serialized: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("artifact"),
        uuid::Uuid::new_v4().simple()
    ));
    // Loading an artifact runs it as native code: only the host's user may write (or read)
    // one.
    {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(serialized)?;
    }
    std::fs::rename(&tmp, path)?;
    Ok(())
}

#[cfg(all(test, feature = "compiler"))]
mod tests {
    use super::*;

    /// The smallest valid component: the preamble alone.
    const EMPTY_COMPONENT: &[u8] = b"\0asm\x0d\x00\x01\x00";

    fn cache(root: &Path, engine: &Engine) -> ArtifactCache {
        ArtifactCache::new(root, super::super::fingerprint::of_engine(engine))
    }

    #[tokio::test]
    async fn compiles_once_then_loads_from_disk_and_replaces_a_corrupt_artifact() {
        let engine = Engine::default();
        let root = tempfile::tempdir().expect("tempdir");
        let digest = "0123abcd";

        let first = cache(root.path(), &engine);
        let (_, lease, hit) = first
            .get(&engine, EMPTY_COMPONENT.to_vec(), digest)
            .await
            .expect("compile");
        assert_eq!(hit, CacheHit::Compiled);
        let (_, _again, hit) = first
            .get(&engine, EMPTY_COMPONENT.to_vec(), digest)
            .await
            .expect("memory");
        assert_eq!(hit, CacheHit::Memory);
        drop((lease, _again));
        let artifact = first.dir().join(format!("{digest}.cwasm"));
        // A host that stops waits for the write; so does this test, instead of polling.
        assert!(
            first
                .finish_writes(std::time::Duration::from_secs(60))
                .await
        );
        assert!(artifact.exists());

        // A restarted host (a new cache over the same directory) does not recompile.
        let restarted = cache(root.path(), &engine);
        let (_, _lease, hit) = restarted
            .get(&engine, EMPTY_COMPONENT.to_vec(), digest)
            .await
            .expect("load");
        assert_eq!(hit, CacheHit::Disk);

        // A damaged artifact is discarded and compiled again, not loaded.
        std::fs::write(&artifact, b"not an artifact").expect("corrupt");
        let damaged = cache(root.path(), &engine);
        let (_, _lease, hit) = damaged
            .get(&engine, EMPTY_COMPONENT.to_vec(), digest)
            .await
            .expect("recompile");
        assert_eq!(hit, CacheHit::Compiled);
    }
}
