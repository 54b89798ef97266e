//! Running a provider: built in (inside a host) or as its own process.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use trellis_lattice::kv::{LatticeState, StateCopy};
use trellis_lattice::server::{self, Listen};

use crate::context::ProviderContext;
use crate::env::ProviderEnv;
use crate::error::{Error, Result};
use crate::links::{LinkEvent, Links, RETARGET_GRACE};
use crate::provider::Provider;
use crate::serve::{serve_invocations, ServeOptions};

/// Tuning of [`run_with`].
#[derive(Clone, Copy, Debug)]
pub struct RunOptions {
    pub serve: ServeOptions,
    /// How long a link that was retargeted away still serves calls sent before the change.
    pub retarget_grace: Duration,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            serve: ServeOptions::default(),
            retarget_grace: RETARGET_GRACE,
        }
    }
}

/// Runs a provider inside a host (which passes its own NATS connection in `env`) until
/// `shutdown` is cancelled; then stops accepting calls, lets the calls in flight finish
/// (bounded) and returns. Errors only while starting.
pub async fn run_builtin<P: Provider>(
    env: ProviderEnv,
    shutdown: CancellationToken,
    provider: P,
) -> Result<()> {
    run_with(env, shutdown, provider, RunOptions::default()).await
}

async fn deliver<P: Provider>(provider: &P, event: LinkEvent) {
    match event {
        LinkEvent::Put(info) => provider.link_put(&info).await,
        LinkEvent::Deleted(info) => provider.link_deleted(&info).await,
        LinkEvent::ConfigChanged(config) => provider.config_changed(&config).await,
    }
}

/// [`run_builtin`] with explicit limits.
pub async fn run_with<P: Provider>(
    env: ProviderEnv,
    shutdown: CancellationToken,
    provider: P,
    options: RunOptions,
) -> Result<()> {
    let provider = Arc::new(provider);
    let subjects = env.subjects();
    let provider_id = env.provider_id.clone();
    // Link tracking outlives serving, so calls that drain still find their links.
    let background = CancellationToken::new();
    let _stop_background = background.clone().drop_guard();

    let setup = async {
        let state = LatticeState::new(
            env.nats.clone(),
            subjects.clone(),
            env.state_copy.clone().map(StateCopy::new),
        );
        Links::start_with_grace(
            state,
            &provider_id,
            env.config_names.clone(),
            env.secrets_key.clone(),
            options.retarget_grace,
            background.clone(),
        )
        .await
    };
    // Told to stop before it could even read its links: nothing to drain.
    let (links, events) = tokio::select! {
        setup = setup => setup?,
        _ = shutdown.cancelled() => return Ok(()),
    };
    let ctx = ProviderContext::new(
        env.nats.clone(),
        subjects.clone(),
        provider_id.clone(),
        env.host_id.clone(),
        links,
    );

    let prefix = subjects.rpc_prefix(&provider_id);
    let wrpc = wrpc_transport_nats::Client::new(
        env.nats.clone(),
        prefix.clone(),
        Some(subjects.queue_group(&provider_id).into()),
    )
    .await
    .map_err(|e| Error::nats(format!("serving under {prefix}"), format!("{e:#}")))?;
    let invocations = provider.serve(&ctx, &wrpc).await.map_err(Error::Provider)?;
    tokio::spawn(follow_events(
        Arc::clone(&provider),
        events,
        background.clone(),
    ));

    let health_subject = subjects.provider_health(&env.host_id, &provider_id);
    // A health check carries nothing to parse.
    let health =
        server::requests(&env.nats, [Listen::subject(health_subject)], |_, _| Ok(())).await?;
    tokio::spawn(crate::health::answer(
        health,
        {
            let provider = Arc::clone(&provider);
            move || {
                let provider = Arc::clone(&provider);
                async move { provider.health().await }
            }
        },
        shutdown.clone(),
    ));
    let functions: Vec<String> = invocations
        .iter()
        .map(|(i, f, _)| format!("{i}.{f}"))
        .collect();
    tracing::info!(
        provider_id,
        host_id = env.host_id,
        lattice = env.lattice,
        ?functions,
        "provider serving"
    );

    serve_invocations(invocations, options.serve, shutdown).await;
    provider.shutdown().await;
    drop(wrpc);
    tracing::info!(provider_id, "provider stopped");
    Ok(())
}

async fn follow_events<P: Provider>(
    provider: Arc<P>,
    mut events: mpsc::UnboundedReceiver<LinkEvent>,
    shutdown: CancellationToken,
) {
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => return,
            event = events.recv() => match event {
                Some(e) => e,
                None => return,
            },
        };
        deliver(&*provider, event).await;
    }
}

/// Logs to stderr, filtered by `TRELLIS_LOG` (default `info`). When stderr is not a
/// terminal (a host captures it and stamps each line with the time and provider id) lines
/// carry no time or colour of their own. With `TRELLIS_OBSERVABILITY` on (its host passes
/// its own setting and `OTEL_*` variables on) it also exports as
/// `trellis-provider-<executable name>`, its instance being the provider id.
fn init_telemetry(executable: &str) -> trellis_telemetry::Telemetry {
    use std::io::IsTerminal as _;
    use trellis_lattice::provider::env;
    use trellis_telemetry::KeyValue;
    let logging = trellis_telemetry::Logging {
        filter: std::env::var(env::LOG).unwrap_or_else(|_| "info".into()),
        json: false,
        plain: !std::io::stderr().is_terminal(),
    };
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    let mut attributes = vec![KeyValue::new("trellis.lattice", var(env::LATTICE))];
    let host_id = var(env::HOST_ID);
    if !host_id.is_empty() {
        attributes.push(KeyValue::new("trellis.host.id", host_id));
    }
    let name = std::env::var(env::NAME).unwrap_or_else(|_| executable.to_string());
    let service = trellis_telemetry::Service {
        name: format!(
            "trellis-provider-{}",
            name.trim_start_matches("trellis-provider-")
        ),
        version: env!("CARGO_PKG_VERSION"),
        instance_id: var(env::PROVIDER_ID),
        attributes,
    };
    trellis_telemetry::init(service, &logging, trellis_telemetry::env_switch())
}

/// Cancelled on SIGTERM or SIGINT.
fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = term.recv() => tracing::info!("SIGTERM received; shutting down"),
                        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received; shutting down"),
                    }
                }
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        cancel.cancel();
        std::thread::spawn(exit_after_grace);
    });
    token
}

/// Called once a stop has begun: whatever the orderly shutdown waits on (a NATS server that
/// is gone, a stuck call), the process ends, so a provider never outlives its host.
fn exit_after_grace() {
    std::thread::sleep(FORCED_EXIT_AFTER);
    eprintln!("provider: still not stopped {FORCED_EXIT_AFTER:?} after being told to; exiting");
    std::process::exit(1);
}

/// A host keeps a pipe to a provider's stdin open while it supervises it; end-of-file means
/// the host is gone, however it went (a parent-death signal is lost when the host dies while
/// the provider is still starting). Watched on a thread of its own, outside the async runtime.
/// `TRELLIS_HOST_PID` says a host started this process; a provider started by hand ignores
/// its stdin.
fn stop_when_host_closes_stdin(shutdown: CancellationToken) {
    if std::env::var_os(trellis_lattice::provider::env::HOST_PID).is_none() {
        return; // started by hand, not by a host
    }
    let spawned = std::thread::Builder::new()
        .name("host-watch".into())
        .spawn(move || {
            use std::io::Read as _;
            let mut stdin = std::io::stdin();
            let mut buf = [0u8; 256];
            loop {
                match stdin.read(&mut buf) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            if !shutdown.is_cancelled() {
                eprintln!("provider: the host closed its pipe; shutting down");
                shutdown.cancel();
            }
            exit_after_grace();
        });
    if let Err(err) = spawned {
        tracing::warn!(%err, "cannot watch the host's pipe");
    }
}

/// How long after a stop a provider executable exits even if its orderly shutdown
/// (draining calls for up to `ServeOptions::drain_timeout`) has not finished.
const FORCED_EXIT_AFTER: std::time::Duration = std::time::Duration::from_secs(15);

/// The whole `main` of a provider executable: logging, settings from the environment its
/// host sets, serving until SIGTERM/SIGINT. On failure prints one line to stderr and
/// returns a failing exit code.
///
/// ```ignore
/// #[tokio::main]
/// async fn main() -> std::process::ExitCode {
///     trellis_provider::run_main(MyProvider::default()).await
/// }
/// ```
pub async fn run_main<P: Provider>(provider: P) -> ExitCode {
    let name = std::env::args()
        .next()
        .and_then(|a| {
            std::path::Path::new(&a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "provider".into());
    let telemetry = init_telemetry(&name);
    // Signals are handled from the start: a provider told to stop while it is still
    // connecting (its NATS server gone) stops instead of connecting forever.
    let shutdown = shutdown_on_signals();
    stop_when_host_closes_stdin(shutdown.clone());
    let result = async {
        let env = tokio::select! {
            env = ProviderEnv::from_env() => env?,
            _ = shutdown.cancelled() => return Ok(()),
        };
        run_builtin(env, shutdown, provider).await
    }
    .await;
    telemetry.shutdown(Duration::from_secs(5)).await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let line = format!("{err}").replace('\n', " ");
            eprintln!("{name}: error: {line}");
            ExitCode::FAILURE
        }
    }
}
