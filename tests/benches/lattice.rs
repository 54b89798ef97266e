//! Lattice round trips and cold starts against a real nats-server and a `trellis-host`
//! process:
//! - `trellis call` (LatticeClient::call) of greeter vs a raw async-nats request/reply on
//!   the same server, interleaved;
//! - a component's call to a key-value provider on another host vs a raw request/reply, and
//!   the throughput of `counter.increment` calls (client → counter → provider);
//! - `component start` → first successful call, with an empty and with a warm compiled cache.
//!
//! Run: `cargo build --release --bins && cargo bench -p trellis-tests --bench lattice`.

use std::time::Instant;

use futures::StreamExt as _;
use trellis_lattice::control::ScaleComponent;
use trellis_tests::stats::{fmt, report, Samples};
use trellis_tests::{component_ref, HostProcess, NatsServer};

fn start(id: &str, component: &str) -> ScaleComponent {
    ScaleComponent {
        component_id: id.to_string(),
        image: component_ref(component),
        replicas: 4,
        config: Vec::new(),
        max_memory_bytes: None,
        timeout_ms: None,
        annotations: Default::default(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let nats = NatsServer::start().await;
    round_trips(&nats).await?;
    provider_calls(&nats).await?;
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

    spawn_echo(nats, "bench.echo").await?;
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

/// A component's call to a key-value provider on another host, made exactly as the
/// component's host makes it (the same invoker, source and link headers), against a raw
/// request/reply; then the throughput of whole `counter.increment` calls.
async fn provider_calls(nats: &NatsServer) -> anyhow::Result<()> {
    use trellis_provider::testing::LinkedClient;
    use trellis_provider_keyvalue::testing::{ok, Kv};

    let app = HostProcess::start(&nats.url(), "kvbench", &[], &[]).await;
    let data = HostProcess::start(&nats.url(), "kvbench", &[], &[]).await;
    let client = nats.client("kvbench").await;
    client
        .put_config(
            "bucket",
            [("bucket".to_string(), "bench".to_string())].into(),
        )
        .await?;
    client
        .start_provider(
            &trellis_lattice::Placement::Host(data.id().to_string()),
            &trellis_lattice::control::StartProvider {
                provider_id: "kv".into(),
                image: "builtin://keyvalue-nats".into(),
                config: vec![],
                annotations: Default::default(),
            },
        )
        .await?;
    client
        .scale_component(app.id(), &start("counter", "counter"))
        .await?;
    client
        .put_link(trellis_lattice::link::Link {
            source_id: "counter".into(),
            target_id: "kv".into(),
            name: "default".into(),
            wit_namespace: "wasi".into(),
            wit_package: "keyvalue".into(),
            interfaces: vec!["atomics".into(), "store".into()],
            source_config: vec![],
            target_config: vec!["bucket".into()],
        })
        .await?;

    let linked = LinkedClient::new(
        nats.connect().await,
        "kvbench",
        "kv",
        Some("counter"),
        Some("default"),
    )
    .await;
    let kv = ok("open", Kv::open(&linked, "").await);
    let raw = client.nats().clone();
    let payload = bytes::Bytes::from_static(b"0123456789abcdef");
    spawn_echo(nats, "bench.echo2").await?;
    for _ in 0..300 {
        ok("increment", kv.increment("warm", 1).await);
        raw.request("bench.echo2", payload.clone()).await?;
    }
    // What the provider itself does per increment, straight from this process: a JetStream KV
    // read and a compare-and-set write on the same bucket.
    let bucket = async_nats::jetstream::new(raw.clone())
        .get_key_value("bench")
        .await?;
    let mut raw_value = 0u64;
    let (mut ours, mut base, mut direct) =
        (Samples::default(), Samples::default(), Samples::default());
    for _ in 0..3000 {
        let t = Instant::now();
        ok("increment", kv.increment("hop", 1).await);
        ours.push(t.elapsed());
        let t = Instant::now();
        raw.request("bench.echo2", payload.clone()).await?;
        base.push(t.elapsed());
        let t = Instant::now();
        let revision = bucket.entry("direct").await?.map_or(0, |e| e.revision);
        raw_value += 1;
        bucket
            .update("direct", raw_value.to_string().into(), revision)
            .await?;
        direct.push(t.elapsed());
    }
    println!(
        "component -> provider call across two hosts (wasi:keyvalue/atomics.increment on NATS KV):"
    );
    report("  host's call to the provider (wRPC over NATS)", &ours);
    report("  raw async-nats request/reply, 16 bytes", &base);
    report(
        "  the provider's own work done directly (KV read + CAS)",
        &direct,
    );
    println!(
        "  ratio to the raw round trip p50 {:.2}, p99 {:.2}; above the provider's own work p50 +{}",
        ours.median().as_secs_f64() / base.median().as_secs_f64(),
        ours.percentile(0.99).as_secs_f64() / base.percentile(0.99).as_secs_f64(),
        fmt(ours.median().saturating_sub(direct.median()))
    );

    // Throughput of whole counter calls: client -> counter (host A) -> provider (host B).
    let client = std::sync::Arc::new(client);
    let seconds = 5;
    let began = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..8 {
        let client = std::sync::Arc::clone(&client);
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            let key = serde_json::json!(format!("load{}", t % 2));
            while began.elapsed() < std::time::Duration::from_secs(seconds) {
                client
                    .call("counter", "increment", std::slice::from_ref(&key))
                    .await?;
                n += 1;
            }
            anyhow::Ok(n)
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await??;
    }
    println!(
        "counter.increment throughput, 8 concurrent callers, provider on another host: {:.0} calls/s",
        total as f64 / began.elapsed().as_secs_f64()
    );
    Ok(())
}

/// A raw request/reply responder on its own connection (like a host's), for baselines.
async fn spawn_echo(nats: &NatsServer, subject: &'static str) -> anyhow::Result<()> {
    let responder = nats.connect().await;
    let mut sub = responder.subscribe(subject).await?;
    responder.flush().await?;
    tokio::spawn(async move {
        while let Some(msg) = sub.next().await {
            if let Some(reply) = msg.reply {
                let _ = responder.publish(reply, msg.payload).await;
            }
        }
    });
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
