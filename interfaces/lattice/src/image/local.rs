//! Reading a local image file safely: only regular files (a device, pipe, socket or directory is
//! refused before a byte is read, and opening cannot block on a pipe), never more than the size
//! limit (counted while reading, whatever length the file claims), and, from async code, off
//! the runtime's threads with a deadline.

use std::fs::File;
use std::io::Read as _;
use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why a local file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LocalReadError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is {what}, not a regular file")]
    NotRegular { path: String, what: &'static str },
    #[error("{path} is larger than the limit of {limit} bytes")]
    TooLarge { path: String, limit: u64 },
    #[error("reading {path} took longer than {}", humantime::format_duration(*after))]
    TimedOut { path: String, after: Duration },
}

impl LocalReadError {
    /// Whether the file simply is not there.
    pub fn is_not_found(&self) -> bool {
        matches!(self, LocalReadError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }
}

fn describe(ft: &std::fs::FileType) -> &'static str {
    if ft.is_dir() {
        "a directory"
    } else if ft.is_fifo() {
        "a named pipe"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// Reads `path` whole if it is a regular file of at most `limit` bytes. Blocks: call it from a
/// blocking thread (see [`read`]).
pub fn read_blocking(path: &Path, limit: u64) -> Result<Vec<u8>, LocalReadError> {
    let shown = path.display().to_string();
    let io = |source| LocalReadError::Io {
        path: shown.clone(),
        source,
    };
    // Non-blocking, so opening a named pipe returns at once instead of waiting for a writer;
    // what the descriptor is, is then asked of the descriptor itself (no race with a rename).
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.file_type().is_file() {
        return Err(LocalReadError::NotRegular {
            path: shown,
            what: describe(&meta.file_type()),
        });
    }
    if meta.len() > limit {
        return Err(LocalReadError::TooLarge { path: shown, limit });
    }
    read_bounded(file, limit).map_err(|e| match e {
        Bounded::Io(source) => LocalReadError::Io {
            path: shown.clone(),
            source,
        },
        Bounded::TooLarge => LocalReadError::TooLarge { path: shown, limit },
    })
}

enum Bounded {
    Io(std::io::Error),
    TooLarge,
}

/// Reads at most `limit` bytes; more is an error (a file that grew, or lied about its length).
fn read_bounded(file: File, limit: u64) -> Result<Vec<u8>, Bounded> {
    let mut bytes = Vec::with_capacity(file.metadata().map(|m| m.len()).unwrap_or(0) as usize);
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(Bounded::Io)?;
    if bytes.len() as u64 > limit {
        return Err(Bounded::TooLarge);
    }
    Ok(bytes)
}

/// Writes `bytes` to `path` as a file only this user can read, replacing what was there in
/// one rename (a crash leaves the old file or the new one, never half of one). Creates the
/// directory (mode 0700) if needed. Blocks.
pub fn write_private_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::DirBuilderExt as _;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("state");
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// [`read_blocking`] on a blocking thread, given up after `deadline`.
pub async fn read(
    path: PathBuf,
    limit: u64,
    deadline: Duration,
) -> Result<Vec<u8>, LocalReadError> {
    let shown = path.display().to_string();
    let task = tokio::task::spawn_blocking(move || read_blocking(&path, limit));
    match tokio::time::timeout(deadline, task).await {
        Ok(Ok(result)) => result,
        Ok(Err(join)) => Err(LocalReadError::Io {
            path: shown,
            source: std::io::Error::other(join.to_string()),
        }),
        Err(_) => Err(LocalReadError::TimedOut {
            path: shown,
            after: deadline,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_files_within_the_limit_only() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.wasm");
        std::fs::write(&file, b"0123456789").unwrap();
        assert_eq!(read_blocking(&file, 10).unwrap(), b"0123456789");
        let err = read_blocking(&file, 9).unwrap_err();
        assert!(
            matches!(err, LocalReadError::TooLarge { limit: 9, .. }),
            "{err}"
        );

        let err = read_blocking(dir.path(), 10).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{} is a directory, not a regular file",
                dir.path().display()
            )
        );
        // A device reports no length and never ends: refused before it is read.
        let err = read_blocking(Path::new("/dev/zero"), 1 << 20).unwrap_err();
        assert!(err.to_string().contains("a character device"), "{err}");
        let err = read_blocking(&dir.path().join("missing"), 10).unwrap_err();
        assert!(err.is_not_found(), "{err}");
    }

    #[test]
    fn a_named_pipe_is_refused_without_waiting_for_a_writer() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe.wasm");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: creating a FIFO at a path in our own temp dir.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let err = read_blocking(&fifo, 10).unwrap_err();
        assert!(err.to_string().contains("a named pipe"), "{err}");
    }

    #[test]
    fn a_file_longer_than_it_claims_is_cut_at_the_limit() {
        // /proc files report a length of 0 and then deliver more.
        let err = read_blocking(Path::new("/proc/self/maps"), 16).unwrap_err();
        assert!(
            matches!(err, LocalReadError::TooLarge { limit: 16, .. }),
            "{err}"
        );
    }
}
