//! The Trellis lattice protocol.
//!
//! Everything that crosses NATS between hosts, the CLI, providers and the deployment manager is
//! defined here, so no other crate formats a subject or invents a message shape:
//!
//! - [`subject`]: every subject name (control, events, wRPC prefixes).
//! - [`id`]: validation of lattice names and component/provider ids.
//! - [`labels`]: host labels, label syntax and constraint matching.
//! - [`control`]: control-interface requests and replies.
//! - [`event`]: the CloudEvents envelope and every event payload.
//! - [`inventory`]: heartbeat, inventory and host summaries; [`presence`]: how many hosts are
//!   live, in one request, so broadcasts end when all of them answered.
//! - [`trace`]: W3C trace context carried in NATS headers.
//! - [`value`]: WIT value types and the JSON ↔ wRPC wire codec used by `trellis call`.
//! - [`rpc`]: invocation over wRPC with clear errors, retries and trace propagation.
//! - [`link`]: links and named config; [`kv`]: where they live (JetStream KV) and how to
//!   follow them; [`secret`]: config values sealed to the lattice's secrets key.
//! - [`grants`]: what a component may reach beyond its links (env, files, outgoing HTTP).
//! - [`image`]: image references (where components and providers come from).
//! - [`provider`]: what hosts and capability providers exchange.
//! - [`app`]: the deployment manager's API (applications, status).
//! - [`client`]: the typed [`LatticeClient`], the caller's half.
//! - [`server`]: the serving half: typed requests, one way to answer, one event publisher.

pub mod app;
pub mod client;
pub mod control;
pub mod error;
pub mod event;
pub mod gpio;
pub mod grants;
pub mod http;
pub mod id;
pub mod image;
pub mod inventory;
pub mod kv;
pub mod labels;
pub mod limits;
pub mod link;
pub mod manifest;
pub mod presence;
pub mod provider;
pub mod rpc;
pub mod secret;
pub mod server;
pub mod stats;
pub mod subject;
pub mod trace;
pub mod units;
pub mod value;

pub use client::{ClientConfig, LatticeClient, NatsAuth, Placement};
pub use error::{ControlError, Error, ErrorKind, Result};
pub use subject::Subjects;

/// The lattice used when none is given.
pub const DEFAULT_LATTICE: &str = "default";

/// The version of the software speaking this protocol.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
