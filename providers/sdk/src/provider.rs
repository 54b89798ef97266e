//! What a provider implements.

use std::future::Future;

use trellis_lattice::link::Config;
use trellis_lattice::provider::HealthReport;

use crate::context::ProviderContext;
use crate::links::LinkInfo;
use crate::serve::Invocations;

/// The wRPC client a provider serves its exports with (prefix
/// `trellis.rpc.{lattice}.{provider_id}`, queue group of its id).
pub type WrpcClient = wrpc_transport_nats::Client;

/// A capability provider. Only [`Provider::serve`] is required:
///
/// ```ignore
/// impl Provider for MyProvider {
///     async fn serve(&self, ctx: &ProviderContext, wrpc: &WrpcClient) -> anyhow::Result<Invocations> {
///         let handler = Handler { ctx: ctx.clone(), .. };
///         Ok(bindings::serve(wrpc, handler).await?)
///     }
/// }
/// ```
pub trait Provider: Send + Sync + 'static {
    /// Starts serving: returns the invocation streams of the generated `serve(wrpc, handler)`.
    /// Called once, at start.
    fn serve(
        &self,
        ctx: &ProviderContext,
        wrpc: &WrpcClient,
    ) -> impl Future<Output = anyhow::Result<Invocations>> + Send;

    /// Answers a health check (healthy unless overridden).
    fn health(&self) -> impl Future<Output = HealthReport> + Send {
        async { HealthReport::healthy() }
    }

    /// A link now targets the provider, or its target config changed: e.g. open a
    /// connection to the backend it names. Called for every link at start and on every
    /// change, in order, on one task (keep it short: later events wait for it); calls on
    /// the link may arrive before it has run.
    fn link_put(&self, _link: &LinkInfo) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// A link no longer targets the provider: e.g. close what `link_put` opened.
    fn link_deleted(&self, _link: &LinkInfo) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// The provider's own merged config changed.
    fn config_changed(&self, _config: &Config) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// The provider stops: calls in flight have finished (or timed out).
    fn shutdown(&self) -> impl Future<Output = ()> + Send {
        async {}
    }
}
