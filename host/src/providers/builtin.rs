//! Providers compiled into the host, started by `builtin://NAME`. They run as tasks of the
//! host, speak to the lattice exactly like external ones, and are restarted with back-off
//! if they fail.

use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt as _;
use tokio_util::sync::CancellationToken;
use trellis_lattice::inventory::ProviderHealth;
use trellis_provider::ProviderEnv;

use super::context::ProvidersContext;
use super::running::{health_changed, restart_delay, sleep_or_cancel, RunningProvider};

/// Runs a built-in provider until `shutdown` fires.
pub type RunFn =
    fn(&ProvidersContext, ProviderEnv, CancellationToken) -> BoxFuture<'static, anyhow::Result<()>>;

const BUILTINS: &[(&str, RunFn)] = &[
    ("keyvalue-nats", |_, env, stop| {
        trellis_provider_keyvalue_nats::run(env, stop).boxed()
    }),
    ("keyvalue-redis", |_, env, stop| {
        trellis_provider_keyvalue_redis::run(env, stop).boxed()
    }),
    ("messaging-nats", |_, env, stop| {
        trellis_provider_messaging_nats::run(env, stop).boxed()
    }),
    ("mqtt", |_, env, stop| {
        trellis_provider_mqtt::run(env, stop).boxed()
    }),
    ("http-server", |ctx, env, stop| {
        // Built in, the server hands requests for components on this host straight to them.
        trellis_provider_http_server::run(env, stop, ctx.local_http.clone()).boxed()
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
    ctx: Arc<ProvidersContext>,
    prov: Arc<RunningProvider>,
    run: RunFn,
    failed: tokio::sync::oneshot::Sender<String>,
) {
    let mut failed = Some(failed);
    let mut attempt = 0u32;
    loop {
        let mut env = ProviderEnv::builtin(
            ctx.nats.clone(),
            ctx.subjects.lattice(),
            prov.id.clone(),
            ctx.host_id.clone(),
            prov.config.clone(),
        );
        env.js_domain = ctx.subjects.js_domain().map(String::from);
        env.state_copy = ctx.state_copy.clone();
        env.secrets_key = ctx.secrets.key();
        let shutdown = prov.cancel.child_token();
        let outcome = std::panic::AssertUnwindSafe(run(&ctx, env, shutdown))
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
        health_changed(&ctx, &prov, ProviderHealth::Restarting, Some(reason)).await;
        if !sleep_or_cancel(&prov, restart_delay(attempt)).await {
            return;
        }
        attempt += 1;
        health_changed(&ctx, &prov, ProviderHealth::Starting, None).await;
    }
}
