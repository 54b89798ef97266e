//! The host's side of the lattice protocol: the NATS session, events, heartbeats and the
//! control interface.

pub mod control;
pub mod events;
pub mod heartbeat;
pub mod session;
pub mod store_requests;
