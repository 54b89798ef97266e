//! The HTTP server provider (`builtin://http-server`, or this crate's executable).
//!
//! Listens on the `address` of its config and routes each request to a component exporting
//! `wasi:http/incoming-handler`, by the links from the server to the components: the link's
//! source config says `path=/prefix` and/or `host=name`. Several routes are several links
//! with different names.
//!
//! - [`config`]: the server's settings.
//! - [`routes`]: the route table, kept current from the lattice's links and config.
//! - [`server`]: the hyper server and per-request dispatch.
//! - [`dispatch`]: where a request runs: on this host directly ([`LocalDispatch`], when the
//!   server is built into a host that runs the component) or over the lattice.

pub mod config;
pub mod dispatch;
pub mod observe;
pub mod routes;
pub mod server;

use std::sync::Arc;

pub use dispatch::{DispatchError, LocalDispatch, ResponseBody};
use trellis_provider::{
    CancellationToken, Invocations, Provider, ProviderContext, ProviderEnv, WrpcClient,
};

/// The provider: the HTTP server plus its route table.
pub struct HttpServer {
    local: Option<Arc<dyn LocalDispatch>>,
    stop: CancellationToken,
    health: Arc<std::sync::Mutex<trellis_provider::HealthReport>>,
}

impl HttpServer {
    /// `local` hands requests for components running on this host to the host directly.
    pub fn new(local: Option<Arc<dyn LocalDispatch>>) -> Self {
        Self {
            local,
            stop: CancellationToken::new(),
            health: Arc::new(std::sync::Mutex::new(
                trellis_provider::HealthReport::unhealthy("starting"),
            )),
        }
    }
}

impl Provider for HttpServer {
    async fn serve(
        &self,
        ctx: &ProviderContext,
        _wrpc: &WrpcClient,
    ) -> anyhow::Result<Invocations> {
        let settings =
            config::ServerConfig::from_config(&ctx.config()).map_err(anyhow::Error::msg)?;
        let (listeners, bound) = server::bind(settings.address, settings.threads)
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", settings.address))?;
        let routes = routes::Routes::follow(ctx, self.stop.clone()).await?;
        let threads = settings.threads;
        let state = server::ServerState::new(ctx, settings, routes, self.local.clone()).await?;
        server::serve_threads(listeners, Arc::new(state), self.stop.clone())?;
        tracing::info!(address = %bound, threads, provider_id = ctx.provider_id(), "HTTP server listening");
        if let Ok(mut h) = self.health.lock() {
            *h = trellis_provider::HealthReport {
                healthy: true,
                message: Some(format!("listening on {bound}")),
            };
        }
        // The server calls components; it serves no WIT exports itself.
        Ok(Vec::new())
    }

    async fn health(&self) -> trellis_provider::HealthReport {
        self.health.lock().map(|h| h.clone()).unwrap_or_else(|_| {
            trellis_provider::HealthReport::unhealthy("health state unavailable")
        })
    }

    async fn shutdown(&self) {
        self.stop.cancel();
    }
}

/// Runs the server inside a host until `shutdown`.
pub async fn run(
    env: ProviderEnv,
    shutdown: CancellationToken,
    local: Option<Arc<dyn LocalDispatch>>,
) -> anyhow::Result<()> {
    trellis_provider::run_builtin(env, shutdown, HttpServer::new(local))
        .await
        .map_err(anyhow::Error::from)
}
