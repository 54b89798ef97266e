//! The Trellis deployment manager.
//!
//! Users hand it OAM application manifests; it places their components on the lattice by
//! label requirements, spread weights and the capabilities each component links to, and keeps
//! the lattice matching them. Like kube-runtime's controllers it is split into a pure core,
//! tested without NATS, and a thin loop that feeds it events and executes its commands:
//!
//! - [`validate`] (the `trellis-validate` crate): manifest text (YAML or JSON) to a
//!   [`Manifest`], with every mistake located, links checked against local images.
//! - [`model`]: the lattice as the scalers see it ([`model::Observed`]).
//! - [`placement`]: which hosts are eligible and how many replicas each gets.
//! - [`scaler`]: (manifest, observed) → commands and per-scaler status; [`scaler::plan`].
//!
//! The machinery around it:
//!
//! - [`records`]: apps, versions, deployments and status in JetStream KV.
//! - [`api`]: the request/reply API every instance serves (`trellis app ...`).
//! - [`lease`]: the leader lease; only the leader executes commands.
//! - [`view`]: the live model of the lattice, from events, replies and snapshots.
//! - [`reconcile`]: the loop that plans on every change and executes the leader's commands.
//! - [`manager`]: one running instance ([`Manager`]).

pub mod api;
pub mod claims;
pub mod lease;
pub mod manager;
pub mod model;
pub mod observe;
pub mod placement;
pub mod reconcile;
pub mod records;
pub mod scaler;
pub mod view;

pub use manager::Manager;
pub use reconcile::Settings;

pub use trellis_lattice::manifest::Manifest;
pub use trellis_validate as validate;
