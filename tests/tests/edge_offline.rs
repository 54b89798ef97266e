//! An edge host on a NATS leaf node that loses its hub: it keeps serving what is local,
//! comes back as itself after a restart while cut off, and the manager on the hub neither
//! reschedules nor duplicates its workload; what changed meanwhile reaches it afterwards.

use std::time::Duration;

use futures::StreamExt as _;
use trellis_lattice::app::AppState;
use trellis_lattice::LatticeClient;
use trellis_tests::deploy::{provider_hosts, replicas, wait_for_app};
use trellis_tests::leaf::{leaf, wait_linked, Hub, Uplink};
use trellis_tests::{init_logging, HostProcess, ManagerProcess};

const LATTICE: &str = "edge-offline";

/// A relay on the edge between two subjects of the edge's leaf, through the messaging-nats
/// provider next to it: a local flow needing links and config, but nothing beyond the leaf.
fn manifest(version: &str, subscriptions: &str) -> String {
    format!(
        r#"
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: plant
  annotations: {{ version: {version}, unreachable-grace: 10m }}
spec:
  components:
    - name: relay
      type: component
      properties: {{ image: {relay} }}
      traits:
        - type: daemonscaler
          properties:
            instances: 1
            spread: [ {{ name: edge, requirements: {{ tier: edge }} }} ]
        - type: link
          properties:
            target: {{ name: msg }}
            namespace: trellis
            package: messaging
            interfaces: [producer]
    - name: msg
      type: capability
      properties: {{ image: builtin://messaging-nats }}
      traits:
        - type: daemonscaler
          properties:
            spread: [ {{ name: edge, requirements: {{ tier: edge }} }} ]
        - type: link
          properties:
            target: {{ name: relay }}
            namespace: trellis
            package: messaging
            interfaces: [incoming-handler]
            source:
              config:
                - name: plant-subscriptions
                  properties: {{ subscriptions: "{subscriptions}" }}
"#,
        relay = trellis_tests::component_ref("relay"),
    )
}

async fn client(url: &str) -> LatticeClient {
    trellis_tests::NatsServer::client_for(url, LATTICE)
        .await
        .with_js_domain(Some("hub".into()))
        .expect("client")
}

/// Publishes `in.{version}.{n}` on the edge's leaf and waits for the relay's
/// `out.{version}.{n}`.
async fn round_trip(
    nats: &async_nats::Client,
    out: &mut async_nats::Subscriber,
    version: &str,
    n: usize,
    patience: Duration,
) -> bool {
    let _ = nats
        .publish(format!("in.{version}.{n}"), format!("m{n}").into())
        .await;
    let _ = nats.flush().await;
    let want = format!("out.{version}.{n}");
    let deadline = tokio::time::Instant::now() + patience;
    while let Ok(Some(msg)) = tokio::time::timeout_at(deadline, out.next()).await {
        if msg.subject.as_str() == want && msg.payload.as_ref() == format!("m{n}").as_bytes() {
            return true;
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_cut_off_keeps_serving_comes_back_as_itself_and_catches_up() {
    init_logging();
    let hub = Hub::start("hub").await;
    let uplink = Uplink::start(hub.leaf_port).await;
    let edge_nats = leaf(&uplink, "edge").await;
    wait_linked(&hub.server, &edge_nats, Duration::from_secs(30)).await;

    let js = ["--js-domain", "hub"];
    let _manager = ManagerProcess::start(&hub.server.url(), LATTICE, &js).await;
    let cloud = HostProcess::start(&hub.server.url(), LATTICE, &[("tier", "cloud")], &js).await;
    let mut edge = HostProcess::start(
        &edge_nats.url(),
        LATTICE,
        &[("tier", "edge")],
        &["--js-domain", "hub", "--heartbeat-interval", "1s"],
    )
    .await;
    let hub_client = client(&hub.server.url()).await;
    // Something in the cloud, for the edge to fail to reach during the cut.
    hub_client
        .scale_component(
            cloud.id(),
            &trellis_tests::scale_request("greeter", "greeter", 1),
        )
        .await
        .expect("greeter in the cloud");
    hub_client
        .put_app("plant.yaml", &manifest("v1", "in.v1.>"))
        .await
        .expect("put v1");
    hub_client.deploy_app("plant", None).await.expect("deploy");
    wait_for_app(
        &hub_client,
        "plant",
        AppState::Deployed,
        Duration::from_secs(60),
    )
    .await;

    let local = edge_nats.connect().await;
    let mut out = local.subscribe("out.>").await.expect("subscribe");
    local.flush().await.expect("flush");
    // The subscription follows the deployment by a moment.
    let mut sent = 0;
    let ready = tokio::time::Instant::now();
    while !round_trip(&local, &mut out, "v1", sent, Duration::from_millis(500)).await {
        sent += 1;
        assert!(
            ready.elapsed() < Duration::from_secs(30),
            "the relay does not answer before the cut"
        );
    }

    // The uplink goes; the hub (and the manager on it) stay up.
    uplink.cut();
    let cut_at = tokio::time::Instant::now();
    // Every local round trip during the cut succeeds.
    while cut_at.elapsed() < Duration::from_secs(10) {
        sent += 1;
        assert!(
            round_trip(&local, &mut out, "v1", sent, Duration::from_secs(5)).await,
            "local round trip {sent} failed during the cut"
        );
    }
    // A call to what runs beyond the cut fails at once, saying why; one to a target that
    // runs nowhere says that instead.
    let invoker = trellis_lattice::rpc::Invoker::new(
        local.clone(),
        trellis_lattice::Subjects::new(LATTICE).with_js_domain(Some("hub".into())),
        trellis_lattice::rpc::InvokerConfig::default(),
    )
    .await
    .expect("invoker");
    let cx = trellis_lattice::rpc::CallContext::external(None);
    let beyond = invoker
        .invoke(
            "greeter",
            &cx,
            "example:greeter/greet",
            "greet",
            bytes::Bytes::new(),
        )
        .await
        .err()
        .expect("no call crosses the cut");
    assert!(
        matches!(beyond, trellis_lattice::rpc::CallError::Partitioned { .. }),
        "{beyond}"
    );
    assert!(
        beyond.to_string().contains("lattice partitioned"),
        "{beyond}"
    );
    hub_client
        .put_app("plant.yaml", &manifest("v2", "in.v2.>"))
        .await
        .expect("put v2");
    hub_client
        .deploy_app("plant", None)
        .await
        .expect("deploy v2");

    // A power cycle on the factory floor: the host comes back as itself, with its workload,
    // from its state directory alone.
    let id_before = edge.id().to_string();
    edge.restart().await;
    assert_eq!(edge.id(), id_before);
    let back = tokio::time::Instant::now();
    let mut first = None;
    while back.elapsed() < Duration::from_secs(30) {
        sent += 1;
        if round_trip(&local, &mut out, "v1", sent, Duration::from_secs(1)).await {
            first = Some(back.elapsed());
            break;
        }
    }
    let first = first.unwrap_or_else(|| {
        panic!(
            "no local round trip within 30s of the restart:\n{}",
            edge.log()
        )
    });
    eprintln!("first local round trip {first:?} after the restart");
    while cut_at.elapsed() < Duration::from_secs(30) {
        sent += 1;
        assert!(
            round_trip(&local, &mut out, "v1", sent, Duration::from_secs(5)).await,
            "local round trip {sent} failed after the restart:\n{}",
            edge.log()
        );
    }
    let log = edge.log();
    assert!(log.contains("restored the saved workload"), "{log}");

    // The hub kept the edge as unreachable: nothing of the edge's moved to the cloud host.
    let on_hub = hub_client.inventories().await.expect("inventories");
    assert!(
        on_hub
            .iter()
            .filter(|inv| inv.host_id == cloud.id())
            .all(|inv| inv.component("plant-relay").is_none()
                && inv.providers.iter().all(|p| p.id != "plant-msg")),
        "nothing was rescheduled to the cloud: {on_hub:#?}"
    );

    uplink.restore();
    wait_linked(&hub.server, &edge_nats, Duration::from_secs(30)).await;
    // v2 reaches the edge: the relay now listens on in.v2.>.
    let restored = tokio::time::Instant::now();
    loop {
        sent += 1;
        if round_trip(&local, &mut out, "v2", sent, Duration::from_millis(500)).await {
            break;
        }
        assert!(
            restored.elapsed() < Duration::from_secs(60),
            "v2 did not reach the edge within 60s of the uplink's return:\n{}",
            edge.log()
        );
    }
    eprintln!(
        "v2 reached the edge {:?} after the uplink returned",
        restored.elapsed()
    );
    wait_for_app(
        &hub_client,
        "plant",
        AppState::Deployed,
        Duration::from_secs(60),
    )
    .await;

    // The inventory equals the manifest: one relay and one provider, on the edge only.
    let relays = replicas(&hub_client, "plant-relay").await;
    assert_eq!(
        relays,
        [(edge.id().to_string(), 1)].into_iter().collect(),
        "one relay, on the edge"
    );
    assert_eq!(
        provider_hosts(&hub_client, "plant-msg").await,
        vec![edge.id().to_string()]
    );
}
