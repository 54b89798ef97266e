//! Reading and writing the files claims live in: only regular files, never more than a
//! bound, written whole or not at all.

use std::io::{Read as _, Write as _};
use std::path::Path;

use crate::error::Error;

/// A detached claim (`.sig`) is one token and a newline.
pub const MAX_SIG_FILE: u64 = 16 * 1024 + 2;

fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The bytes of the regular file at `path`, refused when it holds more than `max`.
/// `None` when there is no such file.
pub fn read_regular(path: &Path, max: u64) -> Result<Option<Vec<u8>>, Error> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(path)(e)),
    };
    let meta = file.metadata().map_err(io(path))?;
    if !meta.is_file() {
        return Err(Error::File {
            path: path.display().to_string(),
            problem: "not a regular file",
        });
    }
    if meta.len() > max {
        return Err(Error::File {
            path: path.display().to_string(),
            problem: "larger than the limit for it",
        });
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // The file may grow after the check; the read stops at the bound anyway.
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(io(path))?;
    if bytes.len() as u64 > max {
        return Err(Error::File {
            path: path.display().to_string(),
            problem: "larger than the limit for it",
        });
    }
    Ok(Some(bytes))
}

/// Writes `bytes` to `path` with `mode`: a temporary file in the same directory, linked into
/// place (refused when `path` exists unless `overwrite`).
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32, overwrite: bool) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    // tempfile creates the file with mode 0600 and O_EXCL; widened below only if asked.
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io(path))?;
    tmp.write_all(bytes).map_err(io(path))?;
    if mode != 0o600 {
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(io(path))?;
    }
    tmp.as_file().sync_all().map_err(io(path))?;
    if overwrite {
        tmp.persist(path).map_err(|e| io(path)(e.error))?;
    } else {
        tmp.persist_noclobber(path).map_err(|e| {
            if e.error.kind() == std::io::ErrorKind::AlreadyExists {
                Error::Exists {
                    path: path.display().to_string(),
                }
            } else {
                io(path)(e.error)
            }
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_small_regular_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        write_atomic(&f, b"12345", 0o644, false).unwrap();
        assert_eq!(read_regular(&f, 5).unwrap().unwrap(), b"12345");
        assert!(matches!(read_regular(&f, 4), Err(Error::File { .. })));
        assert!(matches!(
            read_regular(dir.path(), 4),
            Err(Error::File { .. })
        ));
        assert!(read_regular(&dir.path().join("none"), 4).unwrap().is_none());
        assert!(matches!(
            write_atomic(&f, b"x", 0o644, false),
            Err(Error::Exists { .. })
        ));
    }
}
