//! Lattice round trips and cold starts against a real nats-server and a `trellis-host`
//! process:
//! - `trellis call` (LatticeClient::call) of greeter vs a raw async-nats request/reply on
//!   the same server, interleaved;
//! - `component start` → first successful call, with an empty and with a warm compiled cache.
//!
//! Run: `cargo build --release --bins && cargo bench -p trellis-tests --bench lattice`.

use std::time::Instant;

use futures::StreamExt as _;
use trellis_lattice::control::ScaleComponent;
use trellis_tests::stats::{report, Samples};
use trellis_tests::{component_ref, HostProcess, NatsServer};

fn start(id: &str, component: &str) -> ScaleComponent {
    ScaleComponent {
        component_id: id.to_string(),
        image: component_ref(component),
        replicas: 4,
        max_memory_bytes: None,
        timeout_ms: None,
        annotations: Default::default(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let nats = NatsServer::start().await;
    round_trips(&nats).await?;
    cold_starts(&nats, "greeter", 10).await?;
    cold_starts(&nats, "greeter-py", 3).await?;
    Ok(())
}

async fn round_trips(nats: &NatsServer) -> anyhow::Result<()> {
    let host = HostProcess::start(&nats.url(), "bench", &[], &[]).await;
    let client = nats.client("bench").await;
    client
        .scale_component(host.id(), &start("greeter", "greeter"))
        .await?;

    // A raw responder on its own connection, like the host's.
    let responder = nats.connect().await;
    let mut sub = responder.subscribe("bench.echo").await?;
    responder.flush().await?;
    tokio::spawn(async move {
        while let Some(msg) = sub.next().await {
            if let Some(reply) = msg.reply {
                let _ = responder.publish(reply, msg.payload).await;
            }
        }
    });
    let raw = client.nats().clone();
    let payload = bytes::Bytes::from_static(b"0123456789abcdef");
    let args = [serde_json::json!("Ada")];
    for _ in 0..300 {
        client.call("greeter", "greet", &args).await?;
        raw.request("bench.echo", payload.clone()).await?;
    }
    let (mut ours, mut base) = (Samples::default(), Samples::default());
    for _ in 0..5000 {
        let t = Instant::now();
        let v = client.call("greeter", "greet", &args).await?;
        ours.push(t.elapsed());
        anyhow::ensure!(v == "Hello, Ada!");
        let t = Instant::now();
        raw.request("bench.echo", payload.clone()).await?;
        base.push(t.elapsed());
    }
    println!("round trip, sequential, one client connection:");
    report("trellis call greeter.greet (wRPC over NATS)", &ours);
    report("raw async-nats request/reply, 16 bytes", &base);
    println!(
        "ratio p50 {:.2}, p99 {:.2}",
        ours.median().as_secs_f64() / base.median().as_secs_f64(),
        ours.percentile(0.99).as_secs_f64() / base.percentile(0.99).as_secs_f64()
    );
    Ok(())
}

async fn cold_starts(nats: &NatsServer, component: &str, runs: usize) -> anyhow::Result<()> {
    let warm_dir = tempfile::tempdir()?;
    let warm_cache = warm_dir.path().display().to_string();
    let (mut cold, mut warm) = (Samples::default(), Samples::default());
    for run in 0..=runs {
        for cached in [false, true] {
            let cold_dir = tempfile::tempdir()?;
            let cache = if cached {
                warm_cache.clone()
            } else {
                cold_dir.path().display().to_string()
            };
            let lattice = format!("cold{run}{cached}");
            let host =
                HostProcess::start(&nats.url(), &lattice, &[], &["--cache-dir", &cache]).await;
            let client = nats.client(&lattice).await;
            let t = Instant::now();
            client
                .scale_component(host.id(), &start("c", component))
                .await?;
            let v = client
                .call("c", "greet", &[serde_json::json!("Ada")])
                .await?;
            let took = t.elapsed();
            anyhow::ensure!(v == "Hello, Ada!");
            // The first warm run fills the warm cache; it is not a sample.
            if run > 0 {
                if cached {
                    warm.push(took)
                } else {
                    cold.push(took)
                }
            }
        }
    }
    println!("{component}: component start -> first successful call (new host each run):");
    report("  compiled-component cache empty", &cold);
    report("  compiled-component cache warm", &warm);
    Ok(())
}
