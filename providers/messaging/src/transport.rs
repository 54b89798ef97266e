//! What a messaging provider's transport (MQTT, NATS) implements.

use std::future::Future;

use tokio_util::sync::CancellationToken;
use trellis_lattice::trace::TraceContext;
use trellis_provider::{Config, ProviderContext};

use crate::bindings::{Error, Message};
use crate::config::ConfigError;
use crate::deliver::Sink;

/// One link's subscription, as the transport is asked to run it.
pub struct Subscribe {
    /// `{provider}/{link name}`: for logs.
    pub name: String,
    /// `trellis.{provider}.{link name}`: shared by every instance of the provider, so each
    /// message is delivered once however many hosts run it (a NATS queue group, an MQTT
    /// client id's stem).
    pub group: String,
    /// The link's merged source config (broker, credentials, `subscriptions`).
    pub config: Config,
    /// The topic filters, checked by [`crate::config::Delivery`]; the transport checks its
    /// own syntax.
    pub topics: Vec<String>,
    pub sink: Sink,
    /// Fires when the subscription ends: the link went away or changed, or the provider
    /// stops.
    pub stop: CancellationToken,
    /// Fired before `stop` when the link went away: unsubscribe too (a durable session
    /// would otherwise keep collecting messages for it). Not fired when the provider only
    /// stops, so the session keeps them for its return, nor when the link changed (its
    /// next subscription takes the session over).
    pub unsubscribe: CancellationToken,
    /// Filters the link's previous subscription had and this one has not: a durable
    /// session still holds them, so the transport unsubscribes them.
    pub forget: Vec<String>,
}

/// A broker a messaging provider speaks to.
pub trait Transport: Send + Sync + 'static {
    /// `messaging.system`: `mqtt`, `nats`.
    const SYSTEM: &'static str;

    /// The provider starts, before any call or subscription.
    fn bind(&self, _ctx: &ProviderContext) {}

    /// Publishes `message` on the broker the link's target config names, carrying `trace`
    /// (the sending call's) where the transport has headers. Returns when the broker took
    /// it (acknowledged, at QoS 1); fails, never hangs, when it is away.
    fn send(
        &self,
        config: &Config,
        message: Message,
        trace: Option<TraceContext>,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Starts delivering the messages of `sub.topics` to `sub.sink` until `sub.stop` fires,
    /// through broker restarts (resubscribing). Fails only for a config it can never use.
    fn subscribe(&self, sub: Subscribe) -> impl Future<Output = Result<(), ConfigError>> + Send;

    /// What the transport adds to the provider's health message (queues, outboxes).
    fn status(&self) -> impl Future<Output = Option<String>> + Send {
        async { None }
    }

    /// The provider stops: close connections.
    fn shutdown(&self) -> impl Future<Output = ()> + Send {
        async {}
    }
}
