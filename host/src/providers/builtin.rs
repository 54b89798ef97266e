//! Providers compiled into the host, started by `builtin://NAME`. They run as tasks of the
//! host, speak to the lattice exactly like external ones, and are restarted with back-off
//! if they fail.

use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt as _;
use tokio_util::sync::CancellationToken;
use trellis_lattice::inventory::ProviderHealth;
use trellis_provider::ProviderEnv;

use super::{health_changed, process::sleep_or_cancel, restart_delay, RunningProvider};
use crate::host::HostState;

/// Runs a built-in provider until `shutdown` fires.
pub type RunFn =
    fn(&Arc<HostState>, ProviderEnv, CancellationToken) -> BoxFuture<'static, anyhow::Result<()>>;

const BUILTINS: &[(&str, RunFn)] = &[
    ("keyvalue-nats", |_, env, stop| {
        trellis_provider_keyvalue_nats::run(env, stop).boxed()
    }),
    ("keyvalue-redis", |_, env, stop| {
        trellis_provider_keyvalue_redis::run(env, stop).boxed()
    }),
    ("http-server", |host, env, stop| {
        // Built in, the server hands requests for components on this host straight to them.
        let local: Arc<dyn trellis_provider_http_server::LocalDispatch> =
            Arc::new(crate::ingress::HostDispatch::new(host));
        trellis_provider_http_server::run(env, stop, Some(local)).boxed()
    }),
];

pub fn lookup(name: &str) -> Option<RunFn> {
    BUILTINS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

pub fn names() -> Vec<&'static str> {
    BUILTINS.iter().map(|(n, _)| *n).collect()
}

/// Runs the provider, restarting it with back-off when it returns an error or panics.
pub async fn supervise(
    host: Arc<HostState>,
    prov: Arc<RunningProvider>,
    run: RunFn,
    failed: tokio::sync::oneshot::Sender<String>,
) {
    let mut failed = Some(failed);
    let mut attempt = 0u32;
    loop {
        let env = ProviderEnv::builtin(
            host.nats.clone(),
            host.subjects.lattice(),
            prov.id.clone(),
            host.id.clone(),
            prov.config.clone(),
        );
        let shutdown = prov.cancel.child_token();
        let outcome = std::panic::AssertUnwindSafe(run(&host, env, shutdown))
            .catch_unwind()
            .await;
        if prov.cancel.is_cancelled() {
            return;
        }
        let reason = match outcome {
            Ok(Ok(())) => format!("built-in provider {} stopped on its own", prov.id),
            Ok(Err(e)) => format!("built-in provider {} failed: {e:#}", prov.id),
            Err(_) => format!("built-in provider {} panicked", prov.id),
        };
        if !prov.ever_healthy() {
            if let Some(f) = failed.take() {
                if f.send(reason.clone()).is_ok() {
                    return;
                }
            }
        }
        failed = None;
        tracing::warn!(provider_id = %prov.id, %reason, "restarting built-in provider");
        health_changed(&host, &prov, ProviderHealth::Restarting, Some(reason)).await;
        if !sleep_or_cancel(&prov, restart_delay(attempt)).await {
            return;
        }
        attempt += 1;
        health_changed(&host, &prov, ProviderHealth::Starting, None).await;
    }
}
