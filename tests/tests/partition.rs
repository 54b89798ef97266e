//! Telling a leaf cut off from its hub (`trellis_lattice::kv::partition`), against a real hub
//! and leaf `nats-server` whose link goes through a forwarder the test cuts.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use trellis_lattice::kv::partition::{cut_off, hub_back};
use trellis_lattice::Subjects;
use trellis_tests::leaf::{leaf, wait_linked, Hub, Uplink};

#[tokio::test]
async fn a_leaf_knows_when_its_hub_is_away_and_when_it_is_back() {
    let hub = Hub::start("hub").await;
    let uplink = Uplink::start(hub.leaf_port).await;
    let edge = leaf(&uplink, "edge").await;
    wait_linked(&hub.server, &edge, Duration::from_secs(30)).await;
    let nats = edge.connect().await;
    let probe = Subjects::new("partition")
        .with_js_domain(Some("hub".into()))
        .js_domain_probe()
        .expect("a probe for another domain");

    assert!(
        !cut_off(&nats, Some(&probe)).await,
        "linked: the hub answers"
    );
    assert!(
        !cut_off(&nats, None).await,
        "no other domain: never cut off"
    );
    // The leaf's own JetStream answers for its own domain, never for the hub's.
    let own = Subjects::new("partition")
        .with_js_domain(Some("edge".into()))
        .js_domain_probe()
        .expect("a probe");
    assert!(!cut_off(&nats, Some(&own)).await);

    uplink.cut();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !cut_off(&nats, Some(&probe)).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the cut was never seen"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !cut_off(&nats, Some(&own)).await,
        "the leaf itself still answers"
    );

    // Stopped while waiting: it says so rather than that the hub is back.
    let stop = CancellationToken::new();
    stop.cancel();
    assert!(!hub_back(&nats, &probe, &stop).await);

    let waiting = tokio::spawn({
        let nats = nats.clone();
        let probe = probe.clone();
        async move { hub_back(&nats, &probe, &CancellationToken::new()).await }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "still cut off: still waiting");
    uplink.restore();
    let back = tokio::time::timeout(Duration::from_secs(60), waiting)
        .await
        .expect("the wait ends once the link is back")
        .expect("the waiting task");
    assert!(back);
    assert!(!cut_off(&nats, Some(&probe)).await);
}
