//! The Trellis deployment manager.
//!
//! Users hand it OAM application manifests; it places their components on the lattice by
//! label requirements, spread weights and the capabilities each component links to, and keeps
//! the lattice matching them. Like kube-runtime's controllers it is split into a pure core,
//! tested without NATS, and a thin loop that feeds it events and executes its commands:
//!
//! - [`validate`]: manifest text (YAML or JSON) to a [`Manifest`], with every mistake located.
//! - [`image`]: image references, and the imports of a local component image.
//! - [`model`]: the lattice as the scalers see it ([`model::Observed`]).
//! - [`placement`]: which hosts are eligible and how many replicas each gets.
//! - [`scaler`]: (manifest, observed) → commands and per-scaler status; [`scaler::plan`].

pub mod image;
pub mod model;
pub mod placement;
pub mod scaler;
pub mod validate;

pub use trellis_lattice::manifest::Manifest;
