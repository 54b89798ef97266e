//! The `trellis:messaging@0.1.0` side shared by Trellis messaging providers
//! (`trellis-provider-mqtt`, `trellis-provider-messaging-nats`).
//!
//! - [`bindings`]: generated wRPC bindings: the `producer` export, the component's
//!   `incoming-handler` to call.
//! - [`config`]: what a link's config says (`subscriptions`, `queue`, `concurrency`) and
//!   topic checks.
//! - [`transport`]: the [`Transport`] a provider implements for its broker.
//! - [`subscriptions`]: subscriptions from links (provider → component), followed from the
//!   store.
//! - [`deliver`]: ordered, bounded delivery to a component, each message one call.
//! - [`provider`]: [`MessagingProvider`], the [`trellis_provider::Provider`] over a transport.

pub mod bindings;
pub mod config;
pub mod deliver;
mod observe;
pub mod provider;
pub mod subscriptions;
#[cfg(feature = "testing")]
pub mod testing;

pub mod transport;

pub use bindings::{Error, Message};
pub use deliver::{Ack, Incoming, Sink};
pub use provider::MessagingProvider;
pub use transport::{Subscribe, Transport};
