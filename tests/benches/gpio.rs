//! What an edge costs on its way to a component, in one run on a simulated chip: the
//! `button` component (edge → `on-edge` call → `producer.send` through
//! `builtin://messaging-nats`) on a release host with `--gpio-sim sim0=8`, driven by
//! `gpio.set` control requests from this process. Rows, interleaved in blocks:
//!
//! - edge → message received here: the edge's `CLOCK_MONOTONIC` stamp (carried by the
//!   message) to its arrival (same machine, same clock);
//! - drive request → message received: what a test or a user driving the chip sees;
//! - baseline: a raw NATS publish → receive through the same server, one way (the last hop
//!   of the rows above).
//!
//! Run: `cargo build --release --bins && cargo bench -p trellis-tests --bench gpio`.

use std::time::{Duration, Instant};

use futures::StreamExt as _;
use trellis_lattice::control::StartProvider;
use trellis_lattice::Placement;
use trellis_tests::messaging::{config, messaging_link};
use trellis_tests::stats::{fmt, Samples};
use trellis_tests::{scale_request, HostProcess, NatsServer};

const BLOCKS: usize = 10;
const PER_BLOCK: usize = 100;

fn now_ns() -> u64 {
    trellis_gpio::monotonic_ns()
}

/// One press: rise (a message) and fall (none). Returns (edge → here, drive → here).
async fn press(
    client: &trellis_lattice::LatticeClient,
    host: &str,
    presses: &mut async_nats::Subscriber,
) -> Option<(Duration, Duration)> {
    let start = Instant::now();
    client.gpio_set(host, "sim0", 0, true).await.ok()?;
    let m = tokio::time::timeout(Duration::from_secs(5), presses.next())
        .await
        .ok()??;
    let arrived = now_ns();
    let drive = start.elapsed();
    client.gpio_set(host, "sim0", 0, false).await.ok()?;
    let edge: u64 = m.headers.as_ref()?.get("edge-ns")?.as_str().parse().ok()?;
    Some((Duration::from_nanos(arrived.saturating_sub(edge)), drive))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let nats = NatsServer::start().await;
    let host = HostProcess::start(&nats.url(), "bench", &[], &["--gpio-sim", "sim0=8"]).await;
    let client = nats.client("bench").await;
    let raw = nats.connect().await;
    client
        .put_config(
            "button-cfg",
            config(&[("pins", "button:sim0:0"), ("topic", "presses")]),
        )
        .await?;
    client
        .start_provider(
            &Placement::Host(host.id().to_string()),
            &StartProvider {
                provider_id: "msg".into(),
                image: "builtin://messaging-nats".into(),
                config: vec![],
                annotations: Default::default(),
            },
        )
        .await?;
    client
        .put_link(messaging_link("button", "msg", "producer", &[], &[]))
        .await?;
    let mut req = scale_request("button", "button", 1);
    req.config = vec!["button-cfg".into()];
    client.scale_component(host.id(), &req).await?;
    let mut presses = raw.subscribe("presses").await?;
    let mut echo = raw.subscribe("bench.raw").await?;
    raw.flush().await?;

    // Warm up (the watch starts with the component).
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut warm = 0;
    while warm < 100 {
        anyhow::ensure!(Instant::now() < deadline, "no press arrived");
        if press(&client, host.id(), &mut presses).await.is_some() {
            warm += 1;
        }
    }
    println!(
        "machine: {} cores; one host (release build), simulated chip sim0, {} presses per row in {BLOCKS} interleaved blocks",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        BLOCKS * PER_BLOCK
    );
    let (mut edge, mut drive, mut base) =
        (Samples::default(), Samples::default(), Samples::default());
    for _ in 0..BLOCKS {
        for _ in 0..PER_BLOCK {
            let (e, d) = press(&client, host.id(), &mut presses)
                .await
                .ok_or_else(|| anyhow::anyhow!("a press was lost"))?;
            edge.push(e);
            drive.push(d);
        }
        for _ in 0..PER_BLOCK {
            let start = Instant::now();
            raw.publish("bench.raw", "x".into()).await?;
            tokio::time::timeout(Duration::from_secs(5), echo.next()).await?;
            base.push(start.elapsed());
        }
    }
    for (name, s) in [
        ("edge -> component -> NATS message received", &edge),
        ("gpio.set request -> NATS message received", &drive),
        ("baseline: raw NATS publish -> receive", &base),
    ] {
        println!(
            "  {name:<46} p50 {:>10}  p99 {:>10}",
            fmt(s.median()),
            fmt(s.percentile(0.99))
        );
    }
    println!(
        "  edge -> message beyond the raw NATS hop: p50 +{}",
        fmt(edge.median().saturating_sub(base.median()))
    );
    Ok(())
}
