//! The host's state directory: what lets a host come back as itself after a restart, even
//! one while it is cut off from the hub (a power cycle on a factory floor).
//!
//! - `host.seed`: its nkey, created on first start, so its id survives restarts;
//! - `workload.json`: the components and providers it was last told to run, replayed at
//!   start without waiting for the manager (`workload`);
//! - `lattice.json`: a copy of the links and named config that workload uses, read while
//!   the lattice store is unreachable, by the host and by its providers (`copy`);
//! - `lock`: held while the host runs, so two hosts never share one directory (and one id).

mod copy;
mod workload;

use std::path::{Path, PathBuf};

use anyhow::Context as _;

pub use copy::keep_copy;
pub use workload::{restore, RememberedComponents, RememberedProviders, SavedWorkload};

/// An open (locked) state directory.
pub struct StateDir {
    path: PathBuf,
    // Holds the advisory lock for as long as the host runs.
    _lock: std::fs::File,
}

/// `$XDG_STATE_HOME/trellis/host`, else `~/.local/state/trellis/host`.
pub fn default_path() -> PathBuf {
    std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(std::env::temp_dir)
        .join("trellis")
        .join("host")
}

/// Where the host's key is kept in `dir`.
pub fn seed_path(dir: &Path) -> PathBuf {
    dir.join("host.seed")
}

/// Creates the directory if needed, entered only by this user.
pub fn ensure(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .with_context(|| format!("creating the state directory {}", path.display()))
}

impl StateDir {
    /// Creates the directory (only this user may enter it) and locks it.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        use std::os::unix::fs::OpenOptionsExt as _;
        use std::os::unix::io::AsRawFd as _;
        ensure(path)?;
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(path.join("lock"))
            .with_context(|| format!("opening the lock of {}", path.display()))?;
        // SAFETY: flock on a descriptor this function owns.
        let locked = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if locked != 0 {
            anyhow::bail!(
                "the state directory {} is in use by another host; give each host its own --state-dir (or --ephemeral)",
                path.display()
            );
        }
        Ok(Self {
            path: path.to_path_buf(),
            _lock: lock,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn workload_path(&self) -> PathBuf {
        self.path.join("workload.json")
    }

    pub fn copy_path(&self) -> PathBuf {
        self.path.join("lattice.json")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_directory_is_private_and_held_by_one_host() {
        use std::os::unix::fs::PermissionsExt as _;
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("state");
        let first = StateDir::open(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        let err = StateDir::open(&path).err().unwrap().to_string();
        assert!(err.contains("in use by another host"), "{err}");
        drop(first);
        StateDir::open(&path).expect("free again once the first host is gone");
    }
}
