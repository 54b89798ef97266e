//! `trellis:messaging` over MQTT 5 (`builtin://mqtt`, or this crate's executable), on
//! `rumqttc`.
//!
//! - Sending (`producer` links): one connection per broker, shared by the links naming it;
//!   QoS and retain from the link's target config; content type and metadata as MQTT 5's
//!   content type and user properties, the sender's trace as the user property
//!   `traceparent`. A send returns once the broker has the message and fails at once, with
//!   the reason, while the broker is away.
//! - Receiving (`incoming-handler` links from the provider to a component): one connection
//!   per link, a durable session, QoS 1 acknowledged after the component handled the
//!   message (see [`subscriber`]).
//!
//! The broker and how to reach it come from the link's named config ([`broker`]).

pub mod backoff;
pub mod broker;
pub mod publisher;
pub mod subscriber;
#[cfg(feature = "testing")]
pub mod testing;
pub mod topic;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use rumqttc::v5::mqttbytes::v5::PublishProperties;
use trellis_lattice::trace::{TraceContext, TRACEPARENT};
use trellis_provider::{CancellationToken, Config, ProviderContext, ProviderEnv};
use trellis_provider_messaging::config::ConfigError;
use trellis_provider_messaging::{Error, Message, MessagingProvider, Subscribe, Transport};

use broker::{Broker, Publishing};
use publisher::{Outbound, Publisher};

/// Distinct brokers (by address, credentials and TLS files) one provider publishes to.
pub const MAX_BROKERS: usize = 32;

/// Runs the provider inside a host until `shutdown`.
pub async fn run(env: ProviderEnv, shutdown: CancellationToken) -> anyhow::Result<()> {
    trellis_provider::run_builtin(env, shutdown, provider()).await?;
    Ok(())
}

/// The provider, for `trellis_provider::run_main` or `run_with`.
pub fn provider() -> MessagingProvider<MqttTransport> {
    MessagingProvider::new(MqttTransport::default())
}

#[derive(Default)]
pub struct MqttTransport {
    /// `(provider id, host id)`: names the clients.
    ids: OnceLock<(String, String)>,
    publishers: tokio::sync::Mutex<HashMap<Broker, Arc<Publisher>>>,
}

/// Client options, built on a blocking thread (they read TLS files).
async fn options(broker: &Broker, client_id: String) -> Result<rumqttc::v5::MqttOptions, String> {
    let broker = broker.clone();
    tokio::task::spawn_blocking(move || broker.options(&client_id))
        .await
        .map_err(|_| "building the client options failed".to_string())?
}

/// MQTT client ids: letters, digits, `-`, `_` and `.` only, for any broker.
fn client_id(parts: &[&str]) -> String {
    parts
        .join("-")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .take(128)
        .collect()
}

impl MqttTransport {
    fn ids(&self) -> (&str, &str) {
        self.ids
            .get()
            .map(|(p, h)| (p.as_str(), h.as_str()))
            .unwrap_or(("mqtt", "host"))
    }

    async fn publisher(&self, broker: &Broker) -> Result<Arc<Publisher>, Error> {
        let mut publishers = self.publishers.lock().await;
        if let Some(p) = publishers.get(broker) {
            return Ok(p.clone());
        }
        if publishers.len() >= MAX_BROKERS {
            return Err(Error::Other(format!(
                "more than {MAX_BROKERS} MQTT brokers named by links"
            )));
        }
        let (provider, host) = self.ids();
        let nonce = format!("{:08x}", rand_u32());
        let id = client_id(&[
            "trellis",
            provider,
            "pub",
            &host[..host.len().min(8)],
            &nonce,
        ]);
        let options = options(broker, id).await.map_err(Error::Other)?;
        let p = Arc::new(Publisher::start(
            options,
            broker.display(),
            broker.max_payload,
        ));
        publishers.insert(broker.clone(), p.clone());
        Ok(p)
    }
}

/// A little randomness for client ids, without a dependency.
fn rand_u32() -> u32 {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.finish() as u32
}

fn properties(message: &Message, trace: Option<TraceContext>) -> PublishProperties {
    let mut user_properties = message.metadata.clone();
    if let Some(t) = trace {
        if !user_properties
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case(TRACEPARENT))
        {
            user_properties.push((TRACEPARENT.to_string(), t.to_string()));
        }
    }
    PublishProperties {
        content_type: message.content_type.clone(),
        user_properties,
        ..Default::default()
    }
}

impl Transport for MqttTransport {
    const SYSTEM: &'static str = "mqtt";

    fn bind(&self, ctx: &ProviderContext) {
        let _ = self
            .ids
            .set((ctx.provider_id().to_string(), ctx.host_id().to_string()));
    }

    async fn send(
        &self,
        config: &Config,
        message: Message,
        trace: Option<TraceContext>,
    ) -> Result<(), Error> {
        topic::check_publish(&message.topic).map_err(Error::Other)?;
        let broker = Broker::from_config(config).map_err(|e| Error::Other(e.to_string()))?;
        let publishing =
            Publishing::from_config(config).map_err(|e| Error::Other(e.to_string()))?;
        let publisher = self.publisher(&broker).await?;
        let properties = properties(&message, trace);
        publisher
            .send(Outbound {
                topic: message.topic,
                payload: message.data,
                properties,
                qos: publishing.qos,
                retain: publishing.retain,
            })
            .await
    }

    async fn subscribe(&self, sub: Subscribe) -> Result<(), ConfigError> {
        let broker = Broker::from_config(&sub.config)?;
        let qos = broker::qos(&sub.config)?;
        let expiry = broker::session_expiry(&sub.config)?;
        for f in &sub.topics {
            topic::check_filter(f).map_err(|r| ConfigError::new("subscriptions", r))?;
        }
        let (_, host) = self.ids();
        let id = match sub
            .config
            .get("client-id")
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
        {
            Some(id) => client_id(&[id]),
            None => client_id(&[&sub.group, &host[..host.len().min(8)]]),
        };
        let options = options(&broker, id)
            .await
            .map_err(|r| ConfigError::new("tls", r))?;
        subscriber::spawn(
            options,
            expiry,
            subscriber::Subscription {
                name: sub.name,
                broker: broker.display(),
                filters: sub.topics,
                qos,
                sink: sub.sink,
                stop: sub.stop,
                unsubscribe: sub.unsubscribe,
                forget: sub.forget,
            },
        );
        Ok(())
    }

    async fn shutdown(&self) {
        self.publishers.lock().await.clear();
    }
}
