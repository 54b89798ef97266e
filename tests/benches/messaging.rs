//! What a message costs through Trellis, in one run against one `mosquitto`:
//!
//! - round trip: a client publishes on `in/rt` (QoS 1) and waits for the answer on
//!   `out/rt`, relayed by the `relay` component through `builtin://mqtt` on a host, beside
//!   the same round trip through a plain MQTT echo client in this process (subscribes,
//!   republishes at QoS 1, waits for the `PUBACK`): the broker hops are the same, the
//!   difference is the provider and the component. Interleaved blocks.
//! - throughput: N QoS 1 messages on 8 topics published without waiting, timed until the
//!   last answer arrives, through the relay and through the echo client.
//!
//! Run: `cargo build --release --bins && cargo bench -p trellis-tests --bench messaging`.

use std::time::{Duration, Instant};

use trellis_provider_mqtt::testing::{Mosquitto, Probe, Properties, Qos};
use trellis_tests::messaging::relay_through;
use trellis_tests::stats::{fmt, Samples};
use trellis_tests::{HostProcess, NatsServer};

const BLOCKS: usize = 10;
const PER_BLOCK: usize = 200;
const BURST: usize = 5000;
const BURST_RUNS: usize = 3;

/// Republishes everything on `raw/in/...` to `raw/out/...`, one message at a time.
async fn echo(broker: &Mosquitto) -> tokio::task::JoinHandle<()> {
    let mut client = Probe::connect(broker, "echo").await;
    client.subscribe("raw/in/#").await;
    tokio::spawn(async move {
        loop {
            let Some(m) = client.next_within(Duration::from_secs(3600)).await else {
                return;
            };
            let topic = String::from_utf8_lossy(&m.topic).replacen("raw/in", "raw/out", 1);
            client
                .publish(&topic, m.payload, Qos::AtLeastOnce, Properties::default())
                .await;
        }
    })
}

async fn round_trip(probe: &mut Probe, topic: &str, i: usize) -> Duration {
    let start = Instant::now();
    probe
        .publish(
            topic,
            i.to_string(),
            Qos::AtLeastOnce,
            Properties::default(),
        )
        .await;
    let m = probe.next().await;
    assert_eq!(m.payload, i.to_string().as_bytes(), "answers in order");
    start.elapsed()
}

/// Messages per second through a path: `BURST` messages on 8 topics, to the last answer.
async fn burst(probe: &mut Probe, prefix: &str) -> f64 {
    let start = Instant::now();
    for i in 0..BURST {
        probe
            .publish_nowait(
                &format!("{prefix}/t{}", i % 8),
                i.to_string(),
                Qos::AtLeastOnce,
            )
            .await;
    }
    for _ in 0..BURST {
        probe.next().await;
    }
    BURST as f64 / start.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let broker = Mosquitto::start().await;
    let nats = NatsServer::start().await;
    let host = HostProcess::start(&nats.url(), "bench", &[], &[]).await;
    let client = nats.client("bench").await;
    let url = broker.url();
    relay_through(
        &client,
        host.id(),
        "mqtt",
        "builtin://mqtt",
        &[("url", &url)],
        "in/#",
    )
    .await;
    let _echo = echo(&broker).await;
    let mut probe = Probe::connect(&broker, "bench-client").await;
    probe.subscribe("out/#").await;
    probe.subscribe("raw/out/#").await;
    // Warm up both paths (and wait for the subscription link to be live).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        anyhow::ensure!(Instant::now() < deadline, "the relay never answered");
        probe
            .publish("in/rt", "warm", Qos::AtLeastOnce, Properties::default())
            .await;
        if probe
            .next_within(Duration::from_millis(500))
            .await
            .is_some()
        {
            break;
        }
    }
    while probe
        .next_within(Duration::from_millis(300))
        .await
        .is_some()
    {}
    for i in 0..200 {
        round_trip(&mut probe, "in/rt", i).await;
        round_trip(&mut probe, "raw/in/rt", i).await;
    }

    println!(
        "machine: {} cores; mosquitto {}, one host (release build), relay with 2 instances",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        broker.url()
    );
    let (mut raw, mut trellis) = (Samples::default(), Samples::default());
    for block in 0..BLOCKS {
        let first = block * PER_BLOCK;
        for i in first..first + PER_BLOCK {
            raw.push(round_trip(&mut probe, "raw/in/rt", i).await);
        }
        for i in first..first + PER_BLOCK {
            trellis.push(round_trip(&mut probe, "in/rt", i).await);
        }
    }
    println!(
        "round trip, {} samples per row in {BLOCKS} interleaved blocks:",
        raw.len()
    );
    for (name, s) in [
        ("raw MQTT echo client", &raw),
        ("Trellis relay component (builtin://mqtt)", &trellis),
    ] {
        println!(
            "  {name:<44} p50 {:>10}  p99 {:>10}",
            fmt(s.median()),
            fmt(s.percentile(0.99))
        );
    }
    println!(
        "  ratio Trellis / raw: p50 {:.2}x (+{}), p99 {:.2}x",
        trellis.median().as_secs_f64() / raw.median().as_secs_f64(),
        fmt(trellis.median().saturating_sub(raw.median())),
        trellis.percentile(0.99).as_secs_f64() / raw.percentile(0.99).as_secs_f64(),
    );

    let (mut raw_rates, mut trellis_rates) = (Vec::new(), Vec::new());
    for _ in 0..BURST_RUNS {
        raw_rates.push(burst(&mut probe, "raw/in").await);
        trellis_rates.push(burst(&mut probe, "in").await);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let (r, t) = (median(&mut raw_rates), median(&mut trellis_rates));
    println!(
        "throughput, {BURST} QoS 1 messages on 8 topics, median of {BURST_RUNS} interleaved runs:"
    );
    println!("  raw MQTT echo client (one at a time)          {r:>9.0} msg/s");
    println!(
        "  Trellis relay component (4 topics at once)     {t:>9.0} msg/s   ({:.2}x)",
        t / r
    );
    Ok(())
}
