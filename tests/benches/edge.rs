//! An edge on a leaf node, cut from its hub and back, in one run: a hub `nats-server`
//! (JetStream domain `hub`), a gateway leaf and an edge leaf (the edge's uplink a forwarder
//! this process cuts), a release host on each. Rows:
//!
//! - local call on the edge (a client on the edge's leaf calling `greeter` on the edge
//!   host), connected vs cut, interleaved in blocks; the ratio is the cost of the cut;
//! - uplink restored → the hub reaches the edge host again (`host.get` answered through the
//!   hub), and → a config changed during the cut has reached the edge's component;
//! - readings through edge → gateway → cloud: `sensor-reader` on the edge sends through an
//!   outbox, a `relay` on the gateway and one in the cloud hand each reading on; readings
//!   stored during a cut, then drained when the uplink returns (readings/s), against a raw
//!   NATS request/reply from the edge's leaf to a responder on the gateway's (the
//!   forwarder's floor per message).
//!
//! Run: `cargo build --release --bins && cargo bench -p trellis-tests --bench edge`.

use std::time::{Duration, Instant};

use futures::StreamExt as _;
use trellis_lattice::LatticeClient;
use trellis_tests::leaf::{leaf, wait_linked, Hub, Uplink};
use trellis_tests::messaging::{config, messaging_link};
use trellis_tests::stats::{fmt, Samples};
use trellis_tests::{scale_request, start_provider_on, HostProcess, NatsServer};

const LATTICE: &str = "edge-bench";
const BLOCKS: usize = 5;
const CALLS_PER_BLOCK: usize = 200;
const CYCLES: usize = 5;
const READINGS: usize = 300;
const PINS: &str = "strobe:sim0:0,d0:sim0:1,d1:sim0:2,d2:sim0:3,d3:sim0:4";

async fn client(url: &str) -> LatticeClient {
    NatsServer::client_for(url, LATTICE)
        .await
        .with_js_domain(Some("hub".into()))
        .expect("client")
}

async fn call(edge: &LatticeClient) -> Duration {
    let start = Instant::now();
    edge.call("greeter", "greet", &[serde_json::json!("edge")])
        .await
        .expect("a local call");
    start.elapsed()
}

async fn strobe(edge: &LatticeClient, host: &str) {
    for (line, high) in [(1, true), (0, true), (0, false)] {
        edge.gpio_set(host, "sim0", line, high)
            .await
            .expect("gpio set");
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let hub = Hub::start("hub").await;
    let uplink = Uplink::start(hub.leaf_port).await;
    let gateway_link = Uplink::start(hub.leaf_port).await;
    let edge_nats = leaf(&uplink, "edge").await;
    let gateway_nats = leaf(&gateway_link, "gateway").await;
    wait_linked(&hub.server, &edge_nats, Duration::from_secs(30)).await;
    wait_linked(&hub.server, &gateway_nats, Duration::from_secs(30)).await;
    let js = ["--js-domain", "hub"];
    let cloud = HostProcess::start(&hub.server.url(), LATTICE, &[("tier", "cloud")], &js).await;
    let gateway =
        HostProcess::start(&gateway_nats.url(), LATTICE, &[("tier", "gateway")], &js).await;
    let edge = HostProcess::start(
        &edge_nats.url(),
        LATTICE,
        &[("tier", "edge")],
        &["--js-domain", "hub", "--gpio-sim", "sim0=8"],
    )
    .await;
    let hub_client = client(&hub.server.url()).await;
    let edge_client = client(&edge_nats.url()).await;

    // The pipeline and a component to call on the edge.
    for (name, values) in [
        (
            "reader",
            config(&[("pins", PINS), ("topic", "sensors.readings")]),
        ),
        ("outbox", config(&[("outbox", "readings")])),
        ("gw-subs", config(&[("subscriptions", "sensors.readings")])),
        (
            "cloud-subs",
            config(&[("subscriptions", "out/sensors.readings")]),
        ),
    ] {
        hub_client.put_config(name, values).await?;
    }
    start_provider_on(
        &hub_client,
        edge.id(),
        "edge-msg",
        "builtin://messaging-nats",
    )
    .await;
    start_provider_on(
        &hub_client,
        gateway.id(),
        "gw-msg",
        "builtin://messaging-nats",
    )
    .await;
    start_provider_on(
        &hub_client,
        cloud.id(),
        "cloud-msg",
        "builtin://messaging-nats",
    )
    .await;
    let mut reader = scale_request("reader", "sensor-reader", 1);
    reader.config = vec!["reader".into()];
    reader.grants.wall_clock = true;
    hub_client.scale_component(edge.id(), &reader).await?;
    hub_client
        .scale_component(edge.id(), &scale_request("greeter", "greeter", 1))
        .await?;
    hub_client
        .scale_component(gateway.id(), &scale_request("gw-relay", "relay", 1))
        .await?;
    hub_client
        .scale_component(cloud.id(), &scale_request("cloud-relay", "relay", 1))
        .await?;
    for link in [
        messaging_link("reader", "edge-msg", "producer", &[], &["outbox"]),
        messaging_link("gw-msg", "gw-relay", "incoming-handler", &["gw-subs"], &[]),
        messaging_link("gw-relay", "gw-msg", "producer", &[], &[]),
        messaging_link(
            "cloud-msg",
            "cloud-relay",
            "incoming-handler",
            &["cloud-subs"],
            &[],
        ),
        messaging_link("cloud-relay", "cloud-msg", "producer", &[], &[]),
    ] {
        hub_client.put_link(link).await?;
    }
    let mut arrived = hub_client
        .nats()
        .subscribe("out/out/sensors.readings")
        .await?;
    hub_client.nats().flush().await?;
    // Warm: a reading gets through, calls answer.
    let warm = Instant::now();
    loop {
        strobe(&edge_client, edge.id()).await;
        if let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(500), arrived.next()).await
        {
            break;
        }
        anyhow::ensure!(
            warm.elapsed() < Duration::from_secs(60),
            "no reading got through"
        );
    }
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_secs(2), arrived.next()).await {}
    for _ in 0..50 {
        call(&edge_client).await;
    }
    println!(
        "machine: {} cores; hub + gateway leaf + edge leaf (nats-server), one release host on each",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );

    // 1. Local calls, connected vs cut.
    let (mut connected, mut cut) = (Samples::default(), Samples::default());
    for _ in 0..BLOCKS {
        for _ in 0..CALLS_PER_BLOCK {
            connected.push(call(&edge_client).await);
        }
        uplink.cut();
        tokio::time::sleep(Duration::from_millis(500)).await;
        for _ in 0..CALLS_PER_BLOCK {
            cut.push(call(&edge_client).await);
        }
        uplink.restore();
        wait_linked(&hub.server, &edge_nats, Duration::from_secs(30)).await;
    }
    println!(
        "local call on the edge (greeter, client on the edge's leaf), {} calls per row in {BLOCKS} interleaved blocks:",
        BLOCKS * CALLS_PER_BLOCK
    );
    for (name, s) in [("connected", &connected), ("uplink cut", &cut)] {
        println!(
            "  {name:<12} p50 {:>10}  p99 {:>10}",
            fmt(s.median()),
            fmt(s.percentile(0.99))
        );
    }
    println!(
        "  cut / connected: p50 {:.2}x, p99 {:.2}x",
        cut.median().as_secs_f64() / connected.median().as_secs_f64(),
        cut.percentile(0.99).as_secs_f64() / connected.percentile(0.99).as_secs_f64()
    );

    // 2. Restored → reachable from the hub, and → a change made during the cut arrived.
    let (mut reachable, mut caught_up) = (Samples::default(), Samples::default());
    // Answers what the edge's outbox forwards to `changed.*` (a request each) and says which.
    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel::<String>();
    let answerer = hub.server.connect().await;
    let mut changes = answerer.subscribe("changed.>").await?;
    answerer.flush().await?;
    let answering_changes = tokio::spawn(async move {
        while let Some(m) = changes.next().await {
            if let Some(reply) = m.reply {
                let _ = answerer.publish(reply, "ok".into()).await;
            }
            let _ = seen_tx.send(m.subject.to_string());
        }
    });
    for cycle in 0..CYCLES {
        uplink.cut();
        // Long enough for the manager-less lattice to notice nothing; the edge host keeps
        // retrying its followers meanwhile.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let topic = format!("changed.cycle{cycle}");
        hub_client
            .put_config("reader", config(&[("pins", PINS), ("topic", &topic)]))
            .await?;
        let restored = Instant::now();
        uplink.restore();
        while hub_client.inventory(edge.id()).await.is_err() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        reachable.push(restored.elapsed());
        // The reader sends to the new topic once the edge has the new config.
        loop {
            strobe(&edge_client, edge.id()).await;
            let arrived_there = async {
                while let Some(subject) = seen.recv().await {
                    if subject == topic {
                        return true;
                    }
                }
                false
            };
            if let Ok(true) = tokio::time::timeout(Duration::from_millis(100), arrived_there).await
            {
                break;
            }
            anyhow::ensure!(
                restored.elapsed() < Duration::from_secs(60),
                "config never arrived"
            );
        }
        caught_up.push(restored.elapsed());
    }
    hub_client
        .put_config(
            "reader",
            config(&[("pins", PINS), ("topic", "sensors.readings")]),
        )
        .await?;

    println!("uplink restored -> (median of {CYCLES} cuts of 3 s):");
    println!(
        "  edge host answers through the hub   p50 {:>10}  max {:>10}",
        fmt(reachable.median()),
        fmt(reachable.max())
    );
    println!(
        "  config changed during the cut in use p50 {:>10}  max {:>10}",
        fmt(caught_up.median()),
        fmt(caught_up.max())
    );

    // 3. Draining an outbox through edge → gateway → cloud.
    tokio::time::sleep(Duration::from_secs(6)).await;
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_secs(1), arrived.next()).await {}
    let (mut rates, mut flowing, mut to_first) = (Vec::new(), Vec::new(), Samples::default());
    let mut floors = Samples::default();
    let responder = gateway_nats.connect().await;
    let mut answers = responder.subscribe("bench.floor").await?;
    let answering = tokio::spawn(async move {
        while let Some(m) = answers.next().await {
            if let Some(reply) = m.reply {
                let _ = responder.publish(reply, "ok".into()).await;
            }
        }
    });
    let prober = edge_nats.connect().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..3 {
        uplink.cut();
        tokio::time::sleep(Duration::from_millis(500)).await;
        for _ in 0..READINGS {
            strobe(&edge_client, edge.id()).await;
        }
        // The last readings leave the edge component a moment after their strobe.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let restored = Instant::now();
        uplink.restore();
        let mut got = 0;
        let mut first = None;
        while got < READINGS {
            match tokio::time::timeout(Duration::from_secs(30), arrived.next()).await {
                Ok(Some(_)) => got += 1,
                _ => anyhow::bail!("only {got} of {READINGS} readings arrived"),
            }
            first.get_or_insert_with(Instant::now);
        }
        let first = first.unwrap_or(restored);
        rates.push(READINGS as f64 / restored.elapsed().as_secs_f64());
        to_first.push(first - restored);
        flowing.push((READINGS - 1) as f64 / first.elapsed().as_secs_f64().max(1e-9));
        for _ in 0..200 {
            let start = Instant::now();
            prober.request("bench.floor", "x".into()).await?;
            floors.push(start.elapsed());
        }
    }
    answering.abort();
    answering_changes.abort();
    rates.sort_by(f64::total_cmp);
    flowing.sort_by(f64::total_cmp);
    println!(
        "outbox drained edge -> gateway relay -> cloud relay, {READINGS} readings stored during a cut, 3 runs:"
    );
    println!(
        "  uplink restored -> first reading in the cloud   p50 {:>10}  max {:>10}",
        fmt(to_first.median()),
        fmt(to_first.max())
    );
    println!(
        "  first -> last reading: median {:.0} readings/s (min {:.0}, max {:.0})",
        flowing[1], flowing[0], flowing[2]
    );
    println!(
        "  restore included: median {:.0} readings/s (min {:.0}, max {:.0})",
        rates[1], rates[0], rates[2]
    );
    println!(
        "  baseline: raw NATS request/reply edge leaf -> gateway leaf ({} requests): p50 {} = {:.0}/s one at a time",
        floors.len(),
        fmt(floors.median()),
        1.0 / floors.median().as_secs_f64()
    );
    drop((cloud, gateway, edge));
    Ok(())
}
