//! External providers: an executable fetched like a component (path or URL, digest
//! enforced), spawned with its lattice settings in the environment, its output in the host's
//! log, restarted with back-off when it exits.

use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};
use trellis_lattice::image::ImageRef;
use trellis_lattice::inventory::ProviderHealth;
use trellis_lattice::provider::env;
use trellis_lattice::{ControlError, NatsAuth};

use super::context::ProvidersContext;
use super::running::{health_changed, restart_delay, sleep_or_cancel, RunningProvider};
use crate::runtime::fetch_image;

/// A run at least this long resets the restart back-off.
const STABLE_RUN: Duration = Duration::from_secs(30);
/// Lines of output kept to explain an early exit.
const KEEP_LINES: usize = 8;

/// Checks that the host may run this executable (see [`super::allow`]), fetches it into the
/// host's cache, named by digest, and makes it executable for the providers' user only.
pub async fn prepare(
    ctx: &ProvidersContext,
    reference: &ImageRef,
) -> Result<PathBuf, ControlError> {
    let image = reference.location();
    // Decided before a byte is read: a refused start never opens the file.
    let allowed = ctx.exec.allowed_path(reference).await;
    let in_allowed_dir = allowed.is_some();
    let signing_policy = ctx.issuers.is_on();
    if !in_allowed_dir && !signing_policy {
        return Err(ctx.exec.refusal(&image, signing_policy));
    }
    // Inside an allowed directory, read the path that was checked, not the name again.
    let (bytes, digest) = fetch_image(allowed.as_ref().unwrap_or(reference), ctx.fetch_timeout)
        .await
        .map_err(|e| e.control_error())?;
    if !in_allowed_dir {
        // Outside the allowed directories only a signature vouches for the file.
        crate::policy::executable_is_signed_ok(&ctx.issuers, reference, &bytes, ctx.fetch_timeout)
            .await?;
    }
    ctx.exec.check_executable(&image, &bytes).await?;
    let dir = ctx.cache_dir.join("providers");
    let run_as = ctx.exec.run_as.clone();
    let stored = tokio::task::spawn_blocking(move || store(&dir, &digest, &bytes, run_as))
        .await
        .map_err(|e| ControlError::internal(format!("storing a provider executable: {e}")))?;
    stored.map_err(|(dir, e)| {
        ControlError::internal(format!(
            "cannot store provider executable in {}: {e}",
            dir.display()
        ))
    })
}

/// Keeps `bytes` as `dir/digest`, owned by the host's user and runnable by no one else but
/// the providers' group when providers run as another user. A copy already there is kept only
/// when it is a regular file with exactly those owners and modes.
fn store(
    dir: &std::path::Path,
    digest: &str,
    bytes: &[u8],
    run_as: Option<super::allow::RunAs>,
) -> Result<PathBuf, (PathBuf, std::io::Error)> {
    use std::os::unix::fs::MetadataExt as _;
    let fail = |e| (dir.to_path_buf(), e);
    let (dir_mode, file_mode, gid) = match &run_as {
        None => (0o700, 0o700, None),
        // The providers' user may enter the directory and run the file, not list or change.
        Some(user) => (0o711, 0o750, Some(user.gid)),
    };
    std::fs::create_dir_all(dir).map_err(fail)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(dir_mode)).map_err(fail)?;
    let path = dir.join(digest);
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    let as_wanted = std::fs::symlink_metadata(&path).is_ok_and(|m| {
        m.file_type().is_file()
            && m.uid() == euid
            && m.mode() & 0o7777 == file_mode
            && gid.is_none_or(|g| m.gid() == g)
    });
    if as_wanted {
        return Ok(path);
    }
    let tmp = dir.join(format!(".{digest}.{}.tmp", uuid::Uuid::new_v4().simple()));
    let write = || {
        std::fs::write(&tmp, bytes)?;
        if let Some(g) = gid {
            std::os::unix::fs::chown(&tmp, None, Some(g))?;
        }
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(file_mode))?;
        std::fs::rename(&tmp, &path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        fail(e)
    })?;
    Ok(path)
}

/// The provider's name for its telemetry: the file name its image names (it runs from a
/// copy named by digest), in characters safe anywhere, at most 64 of them.
fn provider_name(image: &str) -> String {
    let rest = image.split_once("://").map_or(image, |(_, rest)| rest);
    let path = rest.split(['?', '#']).next().unwrap_or(rest);
    let last = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    let name: String = last
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        .take(64)
        .collect();
    if name.is_empty() {
        "provider".into()
    } else {
        name
    }
}

fn command(ctx: &ProvidersContext, prov: &RunningProvider, exe: &PathBuf) -> Command {
    let mut cmd = Command::new(exe);
    cmd.env(env::NATS_URL, &ctx.nats_url)
        .env(env::LATTICE, ctx.subjects.lattice())
        .env(env::PROVIDER_ID, &prov.id)
        .env(env::HOST_ID, &ctx.host_id)
        .env(env::HOST_PID, std::process::id().to_string())
        .env(env::CONFIG, prov.config.join(","))
        .env(env::JS_DOMAIN, ctx.subjects.js_domain().unwrap_or(""))
        .env(
            env::STATE_COPY,
            ctx.state_copy
                .as_deref()
                .unwrap_or(std::path::Path::new("")),
        )
        .env(
            env::LOG,
            std::env::var(env::LOG).unwrap_or_else(|_| "info".into()),
        )
        // The provider exports like its host: the same switch and OTEL_* settings.
        .envs(trellis_telemetry::child_env())
        .env(env::NAME, provider_name(&prov.image))
        // The provider opens the sealed config it uses itself, on this host (empty: no key).
        .env(
            env::SECRETS_KEY_FILE,
            ctx.secrets.file().unwrap_or(std::path::Path::new("")),
        )
        // Held open by the host for as long as it supervises the child: when the host is
        // gone for any reason the provider reads end-of-file and stops.
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(user) = &ctx.exec.run_as {
        // The standard library also drops every supplementary group when it switches.
        cmd.uid(user.uid).gid(user.gid);
    }

    // If the host dies without stopping it (SIGKILL), the kernel stops the provider too. A
    // host that died before the child armed the signal is caught by comparing the parent.
    let host_pid = std::process::id();
    // SAFETY: prctl and getppid are async-signal-safe; they only touch this child.
    unsafe {
        cmd.pre_exec(move || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            if libc::getppid() as u32 != host_pid {
                return Err(std::io::Error::other(
                    "the host exited while starting the provider",
                ));
            }
            Ok(())
        });
    }
    match &ctx.nats_auth {
        NatsAuth::None => {}
        NatsAuth::CredsFile(p) => {
            cmd.env(env::NATS_CREDS, p);
        }
        NatsAuth::NkeySeed(s) => {
            cmd.env(env::NATS_NKEY, s);
        }
        NatsAuth::UserPassword { user, password } => {
            cmd.env(env::NATS_USER, user)
                .env(env::NATS_PASSWORD, password);
        }
        NatsAuth::Token(t) => {
            cmd.env(env::NATS_TOKEN, t);
        }
    }
    let tls = &ctx.nats_tls;
    for (name, file) in [
        (env::NATS_TLS_CA, &tls.ca),
        (env::NATS_TLS_CERT, &tls.cert),
        (env::NATS_TLS_KEY, &tls.key),
    ] {
        if let Some(path) = file {
            // The provider may run elsewhere than the host's working directory.
            cmd.env(
                name,
                std::path::absolute(path).unwrap_or_else(|_| path.clone()),
            );
        }
    }
    cmd
}

/// Forwards a child's output to the host log, keeping the last lines for error messages.
fn pump(
    provider_id: String,
    stream: impl tokio::io::AsyncRead + Unpin + Send + 'static,
    tail: Arc<std::sync::Mutex<std::collections::VecDeque<String>>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            tracing::info!(target: "provider", provider_id = %provider_id, "{line}");
            if let Ok(mut t) = tail.lock() {
                if t.len() == KEEP_LINES {
                    t.pop_front();
                }
                t.push_back(line);
            }
        }
    })
}

async fn terminate(child: &mut Child, timeout: Duration) {
    if let Some(pid) = child.id() {
        // SAFETY: signalling the child process we spawned.
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGTERM);
        }
    }
    if tokio::time::timeout(timeout, child.wait()).await.is_err() {
        let _ = child.kill().await;
    }
}

/// Runs the provider until stopped, restarting it when it exits. An exit before it ever
/// answered a health check is reported through `failed` and ends supervision.
pub async fn supervise(
    ctx: Arc<ProvidersContext>,
    prov: Arc<RunningProvider>,
    exe: PathBuf,
    failed: tokio::sync::oneshot::Sender<String>,
) {
    let mut failed = Some(failed);
    let mut attempt = 0u32;
    loop {
        let tail = Arc::new(std::sync::Mutex::new(std::collections::VecDeque::new()));
        let mut child = match command(&ctx, &prov, &exe).spawn() {
            Ok(c) => c,
            Err(e) => {
                let reason = format!("cannot start provider {} ({}): {e}", prov.id, exe.display());
                if let Some(f) = failed.take() {
                    let _ = f.send(reason);
                    return;
                }
                tracing::warn!(provider_id = %prov.id, %reason);
                health_changed(&ctx, &prov, ProviderHealth::Restarting, Some(reason)).await;
                if !sleep_or_cancel(&prov, restart_delay(attempt)).await {
                    return;
                }
                attempt += 1;
                continue;
            }
        };
        tracing::info!(provider_id = %prov.id, pid = child.id().unwrap_or(0), "provider process started");
        // Held until the child is gone (`Child::wait` would close it first): the provider
        // stops when this pipe closes, which is what happens when the host dies.
        let _host_pipe = child.stdin.take();
        let pumps = [
            child
                .stdout
                .take()
                .map(|s| pump(prov.id.clone(), s, Arc::clone(&tail))),
            child
                .stderr
                .take()
                .map(|s| pump(prov.id.clone(), s, Arc::clone(&tail))),
        ];
        let began = tokio::time::Instant::now();
        let status = tokio::select! {
            status = child.wait() => status,
            _ = prov.cancel.cancelled() => {
                terminate(&mut child, ctx.shutdown_timeout).await;
                return;
            }
        };
        for p in pumps.into_iter().flatten() {
            let _ = tokio::time::timeout(Duration::from_millis(200), p).await;
        }
        let status = status
            .map(|s| s.to_string())
            .unwrap_or_else(|e| e.to_string());
        let last = tail
            .lock()
            .map(|t| t.iter().cloned().collect::<Vec<_>>().join(" | "))
            .unwrap_or_default();
        let reason = if last.is_empty() {
            format!("provider {} exited ({status})", prov.id)
        } else {
            format!("provider {} exited ({status}): {last}", prov.id)
        };
        // Exiting before ever answering healthy fails the start request that is still waiting;
        // once that request has been answered, exits are restarted like any other.
        if !prov.ever_healthy() {
            if let Some(f) = failed.take() {
                if f.send(format!("{reason} (before it became healthy)"))
                    .is_ok()
                {
                    return;
                }
            }
        }
        failed = None;
        if began.elapsed() >= STABLE_RUN {
            attempt = 0;
        }
        let delay = restart_delay(attempt);
        tracing::warn!(provider_id = %prov.id, %reason, restart_in = ?delay, "provider exited; restarting");
        health_changed(&ctx, &prov, ProviderHealth::Restarting, Some(reason)).await;
        if !sleep_or_cancel(&prov, delay).await {
            return;
        }
        attempt += 1;
        health_changed(&ctx, &prov, ProviderHealth::Starting, None).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_names_come_from_the_image() {
        assert_eq!(
            provider_name("file:///opt/x/trellis-provider-keyvalue-nats"),
            "trellis-provider-keyvalue-nats"
        );
        assert_eq!(
            provider_name("https://example.com/dl/mqtt-1.2?token=abc"),
            "mqtt-1.2"
        );
        assert_eq!(provider_name("file:///"), "provider");
        assert_eq!(provider_name("file:///a/b c;rm"), "bcrm");
    }
}
