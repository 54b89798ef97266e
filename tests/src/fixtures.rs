//! Set-ups several tests and benches share.

use trellis_lattice::control::StartProvider;
use trellis_lattice::link::Link;
use trellis_lattice::{LatticeClient, Placement};

/// The link from `source` (the counter example) to the key-value provider `target`, its
/// bucket named by the config `config`.
pub fn counter_link(source: &str, target: &str, config: &str) -> Link {
    Link {
        source_id: source.into(),
        target_id: target.into(),
        name: "default".into(),
        wit_namespace: "wasi".into(),
        wit_package: "keyvalue".into(),
        interfaces: vec!["atomics".into(), "store".into()],
        source_config: vec![],
        target_config: vec![config.into()],
    }
}

/// Starts provider `id` from `image` on `host` (panics with the reason if it cannot).
pub async fn start_provider_on(client: &LatticeClient, host: &str, id: &str, image: &str) {
    client
        .start_provider(
            &Placement::Host(host.to_string()),
            &StartProvider {
                provider_id: id.into(),
                image: image.into(),
                config: vec![],
                annotations: Default::default(),
            },
        )
        .await
        .unwrap_or_else(|e| panic!("provider {id} ({image}): {e}"));
}

/// `counter` (4 replicas) on host `a`, its NATS key-value provider `kv-nats` on host `b`,
/// counting in bucket `bucket`.
pub async fn counter_across_two_hosts(client: &LatticeClient, a: &str, b: &str, bucket: &str) {
    counter_across_two_hosts_with(client, a, b, bucket, "builtin://keyvalue-nats").await;
}

/// [`counter_across_two_hosts`] with the key-value provider started from `provider_image`.
pub async fn counter_across_two_hosts_with(
    client: &LatticeClient,
    a: &str,
    b: &str,
    bucket: &str,
    provider_image: &str,
) {
    client
        .put_config(
            "bucket",
            [("bucket".to_string(), bucket.to_string())].into(),
        )
        .await
        .expect("config");
    start_provider_on(client, b, "kv-nats", provider_image).await;
    client
        .scale_component(a, &crate::scale_request("counter", "counter", 4))
        .await
        .expect("counter starts");
    client
        .put_link(counter_link("counter", "kv-nats", "bucket"))
        .await
        .expect("link");
}

/// Asserts that `greeter` still answers (next to something hostile on the same host).
pub async fn greeter_keeps_answering(client: &LatticeClient) {
    let hello = client
        .call("greeter", "greet", &[serde_json::json!("still")])
        .await
        .expect("greeter keeps answering");
    assert_eq!(hello, serde_json::json!("Hello, still!"));
}
