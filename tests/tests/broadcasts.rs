//! Broadcasts (ping, auctions) end once every live host has answered, counted from the
//! lattice's presence stream, instead of waiting for a quiet window. The clients here wait
//! two minutes of quiet: a broadcast that returns well within the test's deadline returned
//! because it counted its answers, not because the window closed.

use std::time::Duration;

use trellis_lattice::client::ClientConfig;
use trellis_lattice::control::ComponentAuction;
use trellis_lattice::labels::Labels;
use trellis_lattice::LatticeClient;
use trellis_tests::{init_logging, HostProcess, InProcessHost, NatsServer};

const LATTICE: &str = "counted";
/// Far longer than any answer takes, far shorter than the quiet window.
const DEADLINE: Duration = Duration::from_secs(60);

async fn patient_client(nats: &NatsServer) -> LatticeClient {
    let conn = trellis_lattice::client::connect(&nats.url(), &Default::default(), "patient")
        .await
        .expect("connecting to NATS");
    let config = ClientConfig {
        collect_quiet: Duration::from_secs(120),
        collect_timeout: Duration::from_secs(240),
        ..ClientConfig::default()
    };
    LatticeClient::with_config(conn, LATTICE, config).expect("client")
}

fn constraints(tier: &str) -> Labels {
    let mut labels = Labels::new();
    labels.insert("tier".into(), tier.into());
    labels
}

#[tokio::test]
async fn broadcasts_end_when_every_live_host_answered() {
    init_logging();
    let nats = NatsServer::start().await;
    let mut cloud = HostProcess::start(&nats.url(), LATTICE, &[("tier", "cloud")], &[]).await;
    let gateway = HostProcess::start(&nats.url(), LATTICE, &[("tier", "gateway")], &[]).await;
    let edge = InProcessHost::start(&nats.url(), LATTICE, &[("tier", "edge")]).await;
    let client = patient_client(&nats).await;

    let hosts = tokio::time::timeout(DEADLINE, client.hosts())
        .await
        .expect("the ping ended once the three live hosts answered")
        .expect("hosts");
    let mut ids: Vec<String> = hosts.into_iter().map(|h| h.id).collect();
    ids.sort();
    let mut expected = vec![cloud.id().to_string(), gateway.id().to_string(), edge.id()];
    expected.sort();
    assert_eq!(ids, expected);

    // Hosts that do not match decline, so an auction ends too, with the one offer.
    let auction = |tier: &str| ComponentAuction {
        component_id: "greeter".into(),
        image: trellis_tests::component_ref("greeter"),
        constraints: constraints(tier),
    };
    let best = tokio::time::timeout(DEADLINE, client.auction_best(&auction("gateway")))
        .await
        .expect("the auction ended once every live host answered")
        .expect("an offer");
    assert_eq!(best, gateway.id());
    let none = tokio::time::timeout(DEADLINE, client.auction_best(&auction("moon")))
        .await
        .expect("an auction nobody matches ends once every host declined");
    assert!(none.is_err(), "no host matches tier=moon: {none:?}");

    // A host that stops says so: the count follows, and the next ping ends without it.
    cloud.terminate().await;
    let hosts = tokio::time::timeout(DEADLINE, client.hosts())
        .await
        .expect("the ping ended once the two live hosts answered")
        .expect("hosts");
    assert_eq!(hosts.len(), 2, "{hosts:#?}");
    assert!(hosts.iter().all(|h| h.id != cloud.id()));
    edge.stop().await;
}

/// The presence stream is bounded: a message larger than a host id is refused, so a client
/// allowed to publish presence cannot grow it without end.
#[tokio::test]
async fn presence_messages_are_bounded() {
    init_logging();
    let nats = NatsServer::start().await;
    let host = HostProcess::start(&nats.url(), LATTICE, &[], &[]).await;
    let conn = trellis_lattice::client::connect(&nats.url(), &Default::default(), "probe")
        .await
        .expect("connecting to NATS");
    let subjects = trellis_lattice::Subjects::new(LATTICE);
    assert_eq!(
        trellis_lattice::presence::live_hosts(&conn, &subjects).await,
        Some(1)
    );
    let js = async_nats::jetstream::new(conn.clone());
    let big = vec![b'x'; 1024];
    let stored = match js.publish(subjects.presence("NFAKE"), big.into()).await {
        Ok(ack) => ack.await.is_ok(),
        Err(_) => false,
    };
    assert!(!stored, "a 1 KiB presence message was stored");
    assert_eq!(
        trellis_lattice::presence::live_hosts(&conn, &subjects).await,
        Some(1),
        "only {} counts",
        host.id()
    );
}
