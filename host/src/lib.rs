//! A Trellis host: joins a NATS lattice and runs WebAssembly components.
//!
//! - [`config`]: flags, environment and defaults; [`identity`]: the host's nkey and name.
//! - [`session`]: the NATS connection, reconnecting forever.
//! - [`runtime`]: the wasmtime engine, component loading and caching, and the one path that
//!   builds and runs an instance with its limits.
//! - [`components`]: what runs here; start, scale, replace, stop; serving exports.
//! - [`providers`]: capability providers, built in or external, supervised.
//! - [`policy`]: the issuer policy: whose signed components and executables run here.
//! - [`links`]: the link table that routes each component's imports.
//! - [`lattice_kv`]: the lattice's links and named config, as the host reads and writes them;
//!   [`secrets`]: the secrets key, opening sealed config for what runs here.
//! - [`ingress`]: HTTP requests for components running here, from the built-in server or
//!   over the lattice.
//! - [`control`]: the control interface: requests routed to the parts that carry them out.
//! - [`labels`], [`inventory`], [`heartbeat`]: what the host tells the lattice about itself.
//! - [`host`]: the parts wired together; start-up and orderly shutdown.

pub mod components;
pub mod config;
pub mod control;
pub mod gpio;
pub mod heartbeat;
pub mod host;
pub mod identity;
pub mod ingress;
pub mod inventory;
pub mod labels;
pub mod lattice_kv;
pub mod links;
pub mod observe;
pub mod policy;
pub mod precompile;
pub mod presence;
pub mod profile;
pub mod providers;
pub mod runtime;
pub mod secrets;
pub mod session;
pub mod state_dir;

pub use config::{HostArgs, HostConfig};
pub use host::Host;
