//! The Trellis provider SDK: what a capability provider needs to join a lattice.
//!
//! A provider serves WIT interfaces over wRPC under `trellis.rpc.{lattice}.{provider_id}`,
//! in the queue group of its id, exactly like a component; calls come from hosts whose
//! components import those interfaces and are linked to the provider. This crate gives it:
//!
//! - [`env`]: its settings ([`ProviderEnv`]), from the environment (external process) or
//!   from the host (built-in).
//! - [`links`]: the links that target it, with their merged target config, kept current
//!   from the lattice's key-value buckets ([`Links`]), and the link each call follows.
//! - [`context`]: per-call context and error reporting ([`ProviderContext::handle`]).
//! - [`serve`]: running the generated invocation streams with bounded concurrency and a
//!   graceful drain ([`serve_invocations`]).
//! - [`provider`]: the [`Provider`] trait; [`run_builtin`] and [`run_main`] run one.
//! - health checks on `Subjects::provider_health`, answered with [`Provider::health`].
//!
//! A provider is a `wit_bindgen_wrpc::generate!` of its world, a `Handler` whose methods
//! each call [`ProviderContext::handle`], and a [`Provider::serve`] returning the
//! generated `serve(wrpc, handler)`.

pub mod caller;
pub mod context;
pub mod env;
mod error;
mod health;
pub mod links;
pub mod provider;
mod run;
pub mod serve;
#[cfg(feature = "testing")]
pub mod testing;

pub use caller::Caller;
pub use context::{Call, ProviderContext};

pub use env::ProviderEnv;
pub use error::{Error, Result};
pub use health::HEALTH_TIMEOUT;
pub use links::{LinkError, LinkEvent, LinkInfo, Links};
pub use provider::{Provider, WrpcClient};
pub use run::{run_builtin, run_main, run_with, RunOptions};
pub use serve::{serve_invocations, Invocations, ServeOptions};

pub use tokio_util::sync::CancellationToken;
pub use trellis_lattice::link::Config;
pub use trellis_lattice::provider::HealthReport;
pub use wrpc_transport_nats::NatsContext;
