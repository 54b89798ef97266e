//! A Trellis host: joins a NATS lattice and runs WebAssembly components.
//!
//! - [`config`]: flags, environment and defaults.
//! - [`identity`]: the host's nkey and friendly name.
//! - [`labels`]: built-in labels detected from the machine.
//! - [`lattice`]: the NATS session, events, heartbeats and the control interface.
//! - [`runtime`]: the wasmtime engine, component loading and caching, invocation limits.
//! - [`components`]: what runs here; start, scale, replace, stop; serving exports.
//! - [`ingress`]: HTTP requests for components running here, from the built-in server or
//!   over the lattice.
//! - [`links`]: the link table that routes each component's imports.
//! - [`providers`]: capability providers, built in or external, supervised.
//! - [`host`]: start-up and orderly shutdown of the whole.

pub mod components;
pub mod config;
pub mod host;
pub mod identity;
pub mod ingress;
pub mod labels;
pub mod lattice;
pub mod links;
pub mod providers;
pub mod runtime;

pub use config::{HostArgs, HostConfig};
pub use host::{Host, HostState};
