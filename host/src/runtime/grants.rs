//! A component's grants (`trellis_lattice::grants`) as its instances get them: checked once at
//! start against what the host's operator shares, then applied to each instance's WASI
//! context and to its outgoing HTTP. Whoever may start a component must not be able to hand it
//! the host's disk, so a preopened directory must lie under one the operator shares.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use trellis_lattice::grants::{Grants, Outbound};
use trellis_lattice::ControlError;
use wasmtime_wasi::{DirPerms, FilePerms, HostWallClock, WasiCtxBuilder};
use wasmtime_wasi_http::p2::bindings::http::types::ErrorCode;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::p2::types::{HostFutureIncomingResponse, OutgoingRequestConfig};
use wasmtime_wasi_http::p2::{HttpResult, WasiHttpHooks};

/// Flags of `trellis-host` that say which of its directories components may be given.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct GrantArgs {
    /// A directory whose contents components may be given read-only with a `preopen` grant
    /// (repeatable; env comma-separated). Without it no component sees any file.
    #[arg(
        long = "allow-preopen",
        env = "TRELLIS_ALLOW_PREOPEN",
        value_delimiter = ',',
        value_name = "DIR"
    )]
    pub read_only: Vec<PathBuf>,

    /// A directory whose contents components may be given read-write (repeatable).
    #[arg(
        long = "allow-preopen-rw",
        env = "TRELLIS_ALLOW_PREOPEN_RW",
        value_delimiter = ',',
        value_name = "DIR"
    )]
    pub writable: Vec<PathBuf>,
}

/// What the host's operator shares with components, resolved once at start.
#[derive(Clone, Debug, Default)]
pub struct GrantPolicy {
    /// Canonical directories that may be preopened read-only (the writable ones count too).
    readable: Vec<PathBuf>,
    /// Canonical directories that may be preopened read-write.
    writable: Vec<PathBuf>,
}

/// The directories a flag names, each as the canonical path it leads to; an empty value
/// names none.
pub(crate) fn canonical_dirs(flag: &str, dirs: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    dirs.iter()
        .filter(|d| !d.as_os_str().is_empty())
        .map(|d| {
            let canon =
                std::fs::canonicalize(d).with_context(|| format!("{flag} {}", d.display()))?;
            anyhow::ensure!(canon.is_dir(), "{flag} {} is not a directory", d.display());
            Ok(canon)
        })
        .collect()
}

impl GrantPolicy {
    pub fn from_args(args: &GrantArgs) -> anyhow::Result<Self> {
        let writable = canonical_dirs("--allow-preopen-rw", &args.writable)?;
        let mut readable = canonical_dirs("--allow-preopen", &args.read_only)?;
        readable.extend(writable.iter().cloned());
        Ok(Self { readable, writable })
    }

    /// Checks a start's grants against the policy and resolves what instances need: every
    /// preopened directory as the canonical path it leads to (resolved on a blocking thread).
    pub async fn resolve(&self, grants: &Grants) -> Result<Arc<ResolvedGrants>, ControlError> {
        let outbound = grants
            .outbound()
            .map_err(|e| ControlError::invalid(e.to_string()))?;
        let policy = self.clone();
        let preopens = grants.preopens.clone();
        let resolved = tokio::task::spawn_blocking(move || {
            preopens
                .iter()
                .map(|p| {
                    let host = policy.shared(Path::new(&p.host), p.writable)?;
                    Ok(ResolvedPreopen {
                        host,
                        guest: p.guest_path().to_string(),
                        writable: p.writable,
                    })
                })
                .collect::<Result<Vec<_>, ControlError>>()
        })
        .await
        .map_err(|e| ControlError::internal(format!("resolving preopens: {e}")))??;
        Ok(Arc::new(ResolvedGrants {
            env: grants
                .env
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            preopens: resolved,
            outbound: outbound.into(),
            wall_clock: grants.wall_clock,
        }))
    }

    /// Where `dir` really leads, if the operator shares it (for writing, when `writable`).
    fn shared(&self, dir: &Path, writable: bool) -> Result<PathBuf, ControlError> {
        let canon = std::fs::canonicalize(dir)
            .ok()
            .filter(|c| c.is_dir())
            .ok_or_else(|| {
                ControlError::invalid(format!(
                    "preopen {}: no such directory on this host",
                    dir.display()
                ))
            })?;
        let (shared, flag) = match writable {
            true => (&self.writable, "--allow-preopen-rw"),
            false => (&self.readable, "--allow-preopen"),
        };
        if shared.iter().any(|d| canon.starts_with(d)) {
            Ok(canon)
        } else {
            Err(ControlError::refused(format!(
                "preopen {}{}: this host does not share that directory with components ({flag})",
                dir.display(),
                if writable { " (read-write)" } else { "" }
            )))
        }
    }
}

#[derive(Clone, Debug)]
struct ResolvedPreopen {
    host: PathBuf,
    guest: String,
    writable: bool,
}

/// The grants of one running component, applied to each of its instances.
#[derive(Clone, Debug, Default)]
pub struct ResolvedGrants {
    env: Vec<(String, String)>,
    preopens: Vec<ResolvedPreopen>,
    outbound: Arc<[Outbound]>,
    wall_clock: bool,
}

impl ResolvedGrants {
    /// Gives an instance's WASI context what was granted and nothing else.
    pub fn apply(&self, wasi: &mut WasiCtxBuilder) {
        wasi.allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        for (k, v) in &self.env {
            wasi.env(k, v);
        }
        if !self.wall_clock {
            wasi.wall_clock(Epoch);
        }
        for p in &self.preopens {
            let (dir, file) = match p.writable {
                true => (DirPerms::all(), FilePerms::all()),
                false => (DirPerms::READ, FilePerms::READ),
            };
            // A directory removed since the start leaves the instance without it; the
            // component sees the missing path as it would any other.
            if let Err(e) = wasi.preopened_dir(&p.host, &p.guest, dir, file) {
                tracing::warn!(dir = %p.host.display(), error = %e, "cannot preopen a granted directory");
            }
        }
    }

    /// Hooks that let outgoing HTTP requests through only to granted destinations.
    pub fn http_hooks(&self) -> OutboundHooks {
        OutboundHooks {
            rules: Arc::clone(&self.outbound),
        }
    }
}

/// A wall clock stopped at the Unix epoch, for components not granted the real one.
struct Epoch;

impl HostWallClock for Epoch {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }

    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

/// Sends a component's outgoing HTTP request only when a grant allows its destination.
#[derive(Default)]
pub struct OutboundHooks {
    rules: Arc<[Outbound]>,
}

impl OutboundHooks {
    fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        self.rules.iter().any(|r| r.allows(scheme, host, port))
    }
}

impl WasiHttpHooks for OutboundHooks {
    fn send_request(
        &mut self,
        request: hyper::Request<HyperOutgoingBody>,
        config: OutgoingRequestConfig,
    ) -> HttpResult<HostFutureIncomingResponse> {
        let scheme = if config.use_tls { "https" } else { "http" };
        let authority = request.uri().authority();
        let host = authority.map(|a| a.host()).unwrap_or("");
        let port = authority
            .and_then(|a| a.port_u16())
            .unwrap_or(if config.use_tls { 443 } else { 80 });
        if !self.allows(scheme, host, port) {
            tracing::debug!(%scheme, %host, port, "outgoing HTTP request denied: no grant allows it");
            return Err(ErrorCode::HttpRequestDenied.into());
        }
        Ok(wasmtime_wasi_http::p2::default_send_request(
            request, config,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trellis_lattice::grants::Preopen;

    fn preopen(host: &Path, writable: bool) -> Grants {
        Grants {
            preopens: vec![Preopen {
                host: host.display().to_string(),
                guest: Some("/data".into()),
                writable,
            }],
            ..Grants::default()
        }
    }

    #[tokio::test]
    async fn only_shared_directories_are_preopened() {
        let shared = tempfile::tempdir().unwrap();
        let rw = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        std::fs::create_dir(shared.path().join("sub")).unwrap();
        std::os::unix::fs::symlink(other.path(), shared.path().join("out")).unwrap();
        let policy = GrantPolicy::from_args(&GrantArgs {
            read_only: vec![shared.path().into()],
            writable: vec![rw.path().into()],
        })
        .unwrap();
        assert!(policy.resolve(&preopen(shared.path(), false)).await.is_ok());
        assert!(policy
            .resolve(&preopen(&shared.path().join("sub"), false))
            .await
            .is_ok());
        assert!(policy.resolve(&preopen(rw.path(), true)).await.is_ok());
        assert!(policy.resolve(&preopen(rw.path(), false)).await.is_ok());
        for (dir, writable) in [
            (other.path().to_path_buf(), false),
            (shared.path().join("out"), false),
            (shared.path().to_path_buf(), true),
            (PathBuf::from("/"), false),
        ] {
            let err = policy.resolve(&preopen(&dir, writable)).await.unwrap_err();
            assert_eq!(err.kind, trellis_lattice::ErrorKind::Refused, "{err}");
            assert!(err.message.contains("does not share"), "{err}");
        }
        let err = GrantPolicy::default()
            .resolve(&preopen(Path::new("/no/such/dir"), false))
            .await
            .unwrap_err();
        assert!(err.message.contains("no such directory"), "{err}");
    }

    #[test]
    fn outgoing_requests_need_a_matching_grant() {
        let none = OutboundHooks::default();
        assert!(!none.allows("http", "127.0.0.1", 80));
        let some = OutboundHooks {
            rules: vec![Outbound::parse("http://127.0.0.1:8080").unwrap()].into(),
        };
        assert!(some.allows("http", "127.0.0.1", 8080));
        assert!(!some.allows("http", "127.0.0.1", 8081));
        assert!(!some.allows("https", "127.0.0.1", 8080));
    }
}
