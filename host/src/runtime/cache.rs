//! Compiled components, cached on disk by digest (so a restart does not recompile) and in
//! memory while any running component uses them (so copies of one image share code).

use std::collections::HashMap;
use std::hash::{Hash as _, Hasher as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use wasmtime::component::Component;
use wasmtime::Engine;

/// Where the compiled artifact came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheHit {
    /// Already loaded by another running component.
    Memory,
    /// Deserialized from the on-disk cache.
    Disk,
    /// Compiled now.
    Compiled,
}

pub struct ArtifactCache {
    dir: PathBuf,
    loaded: Arc<Mutex<HashMap<String, (Component, usize)>>>,
    /// Artifacts being written to disk after their component started.
    writes: tokio_util::task::TaskTracker,
}

/// Keeps a compiled component in the memory cache while held.
pub struct Lease {
    digest: String,
    loaded: Arc<Mutex<HashMap<String, (Component, usize)>>>,
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

impl ArtifactCache {
    /// A cache under `root`, in a directory specific to this engine's compilation settings,
    /// so artifacts of another wasmtime version or configuration are never loaded.
    pub fn new(root: &Path, engine: &Engine) -> Self {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let dir = root
            .join("compiled")
            .join(format!("{:016x}", hasher.finish()));
        Self {
            dir,
            loaded: Arc::default(),
            writes: tokio_util::task::TaskTracker::new(),
        }
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

    /// The compiled component for `bytes` (whose sha256 is `digest`), from memory, disk, or
    /// compiled now (and then written to disk in the background). Runs on a blocking thread.
    pub async fn get(
        &self,
        engine: &Engine,
        bytes: Vec<u8>,
        digest: &str,
    ) -> Result<(Component, Lease, CacheHit), wasmtime::Error> {
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
        let engine = engine.clone();
        let load_path = path.clone();
        let (component, hit) =
            tokio::task::spawn_blocking(move || load_or_compile(&engine, &load_path, &bytes))
                .await
                .map_err(|e| wasmtime::Error::msg(format!("compile task failed: {e}")))??;
        if hit == CacheHit::Compiled {
            // Written after the component is ready rather than before: serializing and writing
            // the artifact costs the first call several milliseconds and nobody waits for it.
            let (dir, component) = (self.dir.clone(), component.clone());
            self.writes.spawn_blocking(move || {
                if let Err(err) = store(&dir, &path, &component) {
                    tracing::warn!(dir = %dir.display(), error = %err, "cannot write the compiled-component cache");
                }
            });
        }
        let lease = self.lease(digest, &component);
        Ok((component, lease, hit))
    }
}

fn load_or_compile(
    engine: &Engine,
    path: &Path,
    bytes: &[u8],
) -> Result<(Component, CacheHit), wasmtime::Error> {
    if path.exists() {
        // SAFETY: files in this directory are only ever written by `Component::serialize`
        // below, for this engine configuration (the directory name is its compatibility hash),
        // and replaced atomically by rename. wasmtime still checks the header and version.
        match unsafe { Component::deserialize_file(engine, path) } {
            Ok(component) => return Ok((component, CacheHit::Disk)),
            Err(err) => {
                tracing::warn!(path = %path.display(), error = %err, "discarding unusable cached artifact");
                let _ = std::fs::remove_file(path);
            }
        }
    }
    Ok((Component::new(engine, bytes)?, CacheHit::Compiled))
}

fn store(dir: &Path, path: &Path, component: &Component) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    let serialized = component
        .serialize()
        .map_err(|e| anyhow::anyhow!("serialize: {e}"))?;
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
        file.write_all(&serialized)?;
    }
    std::fs::rename(&tmp, path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The smallest valid component: the preamble alone.
    const EMPTY_COMPONENT: &[u8] = b"\0asm\x0d\x00\x01\x00";

    #[tokio::test]
    async fn compiles_once_then_loads_from_disk_and_replaces_a_corrupt_artifact() {
        let engine = Engine::default();
        let root = tempfile::tempdir().expect("tempdir");
        let digest = "0123abcd";

        let first = ArtifactCache::new(root.path(), &engine);
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
        let restarted = ArtifactCache::new(root.path(), &engine);
        let (_, _lease, hit) = restarted
            .get(&engine, EMPTY_COMPONENT.to_vec(), digest)
            .await
            .expect("load");
        assert_eq!(hit, CacheHit::Disk);

        // A damaged artifact is discarded and compiled again, not loaded.
        std::fs::write(&artifact, b"not an artifact").expect("corrupt");
        let damaged = ArtifactCache::new(root.path(), &engine);
        let (_, _lease, hit) = damaged
            .get(&engine, EMPTY_COMPONENT.to_vec(), digest)
            .await
            .expect("recompile");
        assert_eq!(hit, CacheHit::Compiled);
    }
}
