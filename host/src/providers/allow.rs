//! What external executables this host will run, as its operator allowed: a provider starts
//! from a directory given with `--provider-dir` or signed by an issuer the host's policy
//! allows; with neither, only `builtin://` providers start. A start request names a file, and
//! whoever can send one must not be able to run an arbitrary file of the host's disk.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::builder::TypedValueParser as _;
use trellis_lattice::image::{ImageRef, ImageSource};
use trellis_lattice::ControlError;

/// The longest `#!` line read to find a script's interpreter.
const MAX_SHEBANG: usize = 256;

/// Flags of `trellis-host` that say what it may execute as a provider.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct ProviderExecArgs {
    /// A directory whose executables (and those of its subdirectories) may run as providers
    /// without a signature (repeatable; env comma-separated). With neither this nor
    /// `--allowed-issuer`, only `builtin://` providers start.
    #[arg(
        long = "provider-dir",
        env = "TRELLIS_PROVIDER_DIRS",
        value_delimiter = ',',
        value_name = "DIR",
        // An empty value means no directory (the path parser would refuse it).
        value_parser = clap::builder::OsStringValueParser::new().map(PathBuf::from)
    )]
    pub dirs: Vec<PathBuf>,

    /// An interpreter a provider script's `#!` line may name (repeatable), e.g.
    /// `/usr/bin/python3`. Scripts naming any other are refused.
    #[arg(
        long = "provider-interpreter",
        env = "TRELLIS_PROVIDER_INTERPRETERS",
        value_delimiter = ',',
        value_name = "PATH"
    )]
    pub interpreters: Vec<PathBuf>,

    /// Run external providers as this user and its primary group, with no supplementary
    /// groups (the host must run as root to switch users).
    #[arg(
        long = "provider-user",
        env = "TRELLIS_PROVIDER_USER",
        value_name = "USER"
    )]
    pub user: Option<String>,
}

/// The user providers run as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunAs {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

/// What this host may execute, resolved once at start.
#[derive(Clone, Debug, Default)]
pub struct ExecPolicy {
    /// Allowed directories, canonical (symbolic links resolved).
    dirs: Vec<PathBuf>,
    /// Allowed interpreters, canonical.
    interpreters: Vec<PathBuf>,
    pub run_as: Option<RunAs>,
}

impl ExecPolicy {
    /// Resolves the flags: every directory and interpreter must exist, the user must exist
    /// and the host must be able to switch to it.
    pub fn from_args(args: ProviderExecArgs) -> anyhow::Result<Self> {
        // An empty value (`--provider-dir ""`) allows nothing, like leaving the flag out.
        let dirs = crate::runtime::grants::canonical_dirs("--provider-dir", &args.dirs)?;
        let interpreters = args
            .interpreters
            .iter()
            .map(|p| {
                std::fs::canonicalize(p)
                    .with_context(|| format!("--provider-interpreter {}", p.display()))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let run_as = match args.user {
            None => None,
            Some(name) => Some(resolve_user(&name)?),
        };
        Ok(Self {
            dirs,
            interpreters,
            run_as,
        })
    }

    /// A policy allowing these directories (tests, embedding).
    pub fn with_dirs(dirs: Vec<PathBuf>) -> Self {
        Self {
            dirs,
            ..Self::default()
        }
    }

    /// The image at the path it really leads to, when that lies under an allowed directory
    /// (a link inside an allowed directory pointing out of it does not count). The host then
    /// reads that path, so a link changed after this check cannot move the read elsewhere.
    /// Runs on a blocking thread: resolving a path touches the disk.
    pub async fn allowed_path(&self, reference: &ImageRef) -> Option<ImageRef> {
        let ImageSource::File(path) = &reference.source else {
            return None;
        };
        if self.dirs.is_empty() {
            return None;
        }
        let (path, dirs) = (path.clone(), self.dirs.clone());
        let canon = tokio::task::spawn_blocking(move || {
            std::fs::canonicalize(&path)
                .ok()
                .filter(|canon| dirs.iter().any(|d| canon.starts_with(d)))
        })
        .await
        .ok()
        .flatten()?;
        Some(ImageRef {
            source: ImageSource::File(canon),
            sha256: reference.sha256.clone(),
        })
    }

    /// Only real executables are started: an ELF binary, or a script whose `#!` line names
    /// an interpreter the operator allowed. Anything else would be handed to `/bin/sh` by the
    /// C library's exec fallback. The message names the problem, never what the file holds.
    pub async fn check_executable(&self, image: &str, bytes: &[u8]) -> Result<(), ControlError> {
        if bytes.starts_with(b"\0asm") {
            return Err(ControlError::invalid(format!(
                "{image} is WebAssembly; providers are executables (start components with `trellis component start`)"
            )));
        }
        if bytes.starts_with(b"\x7fELF") {
            return Ok(());
        }
        let Some(interpreter) = shebang(bytes) else {
            return Err(ControlError::invalid(format!(
                "{image} is not an executable (neither an ELF binary nor a script starting with #!)"
            )));
        };
        let allowed = self.interpreters.clone();
        let named = interpreter.clone();
        let ok = tokio::task::spawn_blocking(move || {
            std::fs::canonicalize(&named).is_ok_and(|canon| allowed.contains(&canon))
        })
        .await
        .unwrap_or(false);
        if ok {
            Ok(())
        } else {
            Err(ControlError::refused(format!(
                "{image} is a script for {}, an interpreter this host does not allow for providers (--provider-interpreter)",
                interpreter.display()
            )))
        }
    }

    /// Why a provider that is neither in an allowed directory nor signed is refused.
    pub fn refusal(&self, image: &str, signing_policy: bool) -> ControlError {
        let reason = match (self.dirs.is_empty(), signing_policy) {
            (true, false) => "this host starts only builtin:// providers (its operator allowed no --provider-dir and no --allowed-issuer)",
            (false, false) => "it is not under a directory this host allows providers from (--provider-dir)",
            (true, true) => "it is not signed by an issuer this host allows (--allowed-issuer)",
            (false, true) => "it is neither under a directory this host allows providers from (--provider-dir) nor signed by an issuer it allows (--allowed-issuer)",
        };
        ControlError::refused(format!("provider {image} refused: {reason}"))
    }
}

/// The interpreter a `#!` line names: its first word, an absolute path.
fn shebang(bytes: &[u8]) -> Option<PathBuf> {
    let rest = bytes.strip_prefix(b"#!")?;
    let line = &rest[..rest.len().min(MAX_SHEBANG)];
    let end = line.iter().position(|b| *b == b'\n')?;
    let line = std::str::from_utf8(&line[..end]).ok()?;
    let word = line.split_whitespace().next()?;
    Path::new(word).is_absolute().then(|| PathBuf::from(word))
}

/// Looks a user up in the system's user database.
fn resolve_user(name: &str) -> anyhow::Result<RunAs> {
    let c_name = std::ffi::CString::new(name)
        .map_err(|_| anyhow::anyhow!("--provider-user: a user name has no NUL byte"))?;
    let mut buf = vec![0u8; 16 * 1024];
    // SAFETY: getpwnam_r writes only into `pwd` and `buf`, whose sizes it is given, and sets
    // `found` to `pwd` or null; the strings it points at live in `buf`, which outlives them.
    let (uid, gid) = unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwnam_r(
            c_name.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut found,
        );
        if rc != 0 || found.is_null() {
            anyhow::bail!("--provider-user {name}: no such user");
        }
        (pwd.pw_uid, pwd.pw_gid)
    };
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    anyhow::ensure!(
        euid == 0 || euid == uid,
        "--provider-user {name}: switching to another user needs a host running as root (this one runs as uid {euid})"
    );
    Ok(RunAs {
        name: name.to_string(),
        uid,
        gid,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interpreter_is_the_first_word_of_an_absolute_shebang() {
        assert_eq!(shebang(b"#!/bin/sh\necho"), Some("/bin/sh".into()));
        assert_eq!(
            shebang(b"#! /usr/bin/env python3\n"),
            Some("/usr/bin/env".into())
        );
        assert_eq!(shebang(b"#!sh\n"), None);
        assert_eq!(shebang(b"#!/bin/sh"), None, "no end of line");
        let long = [b"#!/".as_slice(), &[b'a'; 300], b"\n"].concat();
        assert_eq!(shebang(&long), None, "longer than a #! line may be");
    }

    #[tokio::test]
    async fn only_elf_and_allowed_scripts_and_no_contents_in_the_error() {
        let none = ExecPolicy::default();
        assert!(none
            .check_executable("/bin/x", b"\x7fELF\x02\x01")
            .await
            .is_ok());
        let err = none
            .check_executable("/x", b"#!/bin/sh\necho secret-word")
            .await
            .unwrap_err();
        assert_eq!(err.kind, trellis_lattice::ErrorKind::Refused);
        assert!(err.message.contains("/bin/sh"), "{err}");
        assert!(!err.message.contains("secret-word"), "{err}");
        let sh = ExecPolicy {
            interpreters: vec![std::fs::canonicalize("/bin/sh").unwrap()],
            ..ExecPolicy::default()
        };
        assert!(sh.check_executable("/x", b"#!/bin/sh\necho").await.is_ok());
        let err = sh
            .check_executable("/etc/shadow", b"root:$6$secret:19000::")
            .await
            .unwrap_err();
        assert_eq!(err.kind, trellis_lattice::ErrorKind::Invalid);
        assert!(err.message.contains("not an executable"), "{err}");
        assert!(!err.message.contains("root"), "{err}");
        assert!(sh
            .check_executable("/c.wasm", b"\0asm\x0d\0\x01\0")
            .await
            .is_err());
    }

    #[tokio::test]
    async fn a_link_out_of_an_allowed_directory_does_not_count() {
        let allowed = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let inside = allowed.path().join("p");
        std::fs::write(&inside, b"x").unwrap();
        let target = outside.path().join("q");
        std::fs::write(&target, b"x").unwrap();
        let link = allowed.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let policy = ExecPolicy::with_dirs(vec![std::fs::canonicalize(allowed.path()).unwrap()]);
        let at = |p: &Path| ImageRef::parse(&p.display().to_string()).unwrap();
        assert!(policy.allowed_path(&at(&inside)).await.is_some());
        assert!(policy.allowed_path(&at(&link)).await.is_none());
        assert!(policy.allowed_path(&at(&target)).await.is_none());
        let dotdot = allowed.path().join("..").join(
            outside
                .path()
                .strip_prefix(outside.path().parent().unwrap())
                .unwrap()
                .join("q"),
        );
        assert!(policy.allowed_path(&at(&dotdot)).await.is_none());
        assert!(ExecPolicy::default()
            .allowed_path(&at(&inside))
            .await
            .is_none());
    }

    #[test]
    fn with_nothing_allowed_only_builtins_start() {
        let err = ExecPolicy::default().refusal("file:///bin/true", false);
        assert_eq!(err.kind, trellis_lattice::ErrorKind::Refused);
        assert!(err.message.contains("only builtin://"), "{err}");
        let err = ExecPolicy::default().refusal("/x", true);
        assert!(err.message.contains("--allowed-issuer"), "{err}");
    }

    #[test]
    fn an_unknown_provider_user_is_named() {
        let err = resolve_user("no-such-user-trellis").unwrap_err();
        assert!(err.to_string().contains("no such user"), "{err}");
    }
}
