//! Set-ups of the messaging tests and benches: the `relay` component between a messaging
//! provider's subscriptions and its producer.

use trellis_lattice::link::{Config, Link};
use trellis_lattice::LatticeClient;

/// A `trellis:messaging` link.
pub fn messaging_link(
    source: &str,
    target: &str,
    interface: &str,
    source_config: &[&str],
    target_config: &[&str],
) -> Link {
    Link {
        source_id: source.into(),
        target_id: target.into(),
        name: "default".into(),
        wit_namespace: "trellis".into(),
        wit_package: "messaging".into(),
        interfaces: vec![interface.into()],
        source_config: source_config.iter().map(|s| s.to_string()).collect(),
        target_config: target_config.iter().map(|s| s.to_string()).collect(),
    }
}

pub fn config(pairs: &[(&str, &str)]) -> Config {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// What provider `provider_id` on `host_id` answers to a health check now.
pub async fn health(
    nats: &async_nats::Client,
    lattice: &str,
    host_id: &str,
    provider_id: &str,
) -> Option<trellis_lattice::provider::HealthReport> {
    let subject = trellis_lattice::Subjects::new(lattice).provider_health(host_id, provider_id);
    let reply = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        nats.request(subject, bytes::Bytes::new()),
    )
    .await
    .ok()?
    .ok()?;
    trellis_lattice::control::Reply::<trellis_lattice::provider::HealthReport>::parse(
        &reply.payload,
    )
    .and_then(trellis_lattice::control::Reply::into_result)
    .ok()
}

/// Starts provider `provider_id` from `image` on `host` and `relay` (2 replicas) there too,
/// subscribed to `subscriptions` and sending through the provider, both links naming the
/// broker config `broker` (may be empty).
pub async fn relay_through(
    client: &LatticeClient,
    host: &str,
    provider_id: &str,
    image: &str,
    broker: &[(&str, &str)],
    subscriptions: &str,
) {
    client
        .put_config("relay-broker", config(broker))
        .await
        .expect("broker config");
    client
        .put_config("relay-subs", config(&[("subscriptions", subscriptions)]))
        .await
        .expect("subscriptions config");
    crate::start_provider_on(client, host, provider_id, image).await;
    client
        .scale_component(host, &crate::scale_request("relay", "relay", 2))
        .await
        .expect("relay starts");
    client
        .put_link(messaging_link(
            "relay",
            provider_id,
            "producer",
            &[],
            &["relay-broker"],
        ))
        .await
        .expect("producer link");
    client
        .put_link(messaging_link(
            provider_id,
            "relay",
            "incoming-handler",
            &["relay-broker", "relay-subs"],
            &[],
        ))
        .await
        .expect("subscription link");
}
