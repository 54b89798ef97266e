//! Lattice round trips and cold starts against a real nats-server and a `trellis-host`
//! process:
//! - `trellis call` (LatticeClient::call) of greeter vs a raw async-nats request/reply on
//!   the same server, interleaved;
//! - a real component's call through its linked `wasi:keyvalue` import to a provider on
//!   another host vs on its own host vs a raw request/reply, and the throughput of
//!   `counter.increment` calls (client → counter → provider);
//! - `component start` → first successful call: compiled cache empty (without and with a
//!   lattice key, which publishes the artifact), loaded from the lattice by a second host with
//!   an empty cache, and warm.
//!
//! Run: `cargo build --release --bins && cargo bench -p trellis-tests --bench lattice`.

use std::time::Instant;

use futures::StreamExt as _;
use trellis_lattice::control::ScaleComponent;
use trellis_tests::stats::{fmt, report, Samples};
use trellis_tests::{HostProcess, NatsServer};

fn start(id: &str, component: &str) -> ScaleComponent {
    trellis_tests::scale_request(id, component, 4)
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

/// The same counter component on host A, called from outside, with its `wasi:keyvalue`
/// import served by a provider on host B and by one on host A; beside a raw request/reply on
/// the same server. Then the throughput of whole `counter.increment` calls across hosts.
async fn provider_calls(nats: &NatsServer) -> anyhow::Result<()> {
    let app = HostProcess::start(&nats.url(), "kvbench", &[], &[]).await;
    let data = HostProcess::start(&nats.url(), "kvbench", &[], &[]).await;
    let client = nats.client("kvbench").await;
    client
        .put_config(
            "bucket",
            [("bucket".to_string(), "bench".to_string())].into(),
        )
        .await?;
    for (provider, host) in [("kv-remote", data.id()), ("kv-local", app.id())] {
        client
            .start_provider(
                &trellis_lattice::Placement::Host(host.to_string()),
                &trellis_lattice::control::StartProvider {
                    provider_id: provider.into(),
                    image: "builtin://keyvalue-nats".into(),
                    config: vec![],
                    annotations: Default::default(),
                },
            )
            .await?;
    }
    for (component, provider) in [
        ("counter-remote", "kv-remote"),
        ("counter-local", "kv-local"),
    ] {
        client
            .scale_component(app.id(), &start(component, "counter"))
            .await?;
        client
            .put_link(trellis_tests::counter_link(component, provider, "bucket"))
            .await?;
    }
    let raw = client.nats().clone();
    let payload = bytes::Bytes::from_static(b"0123456789abcdef");
    spawn_echo(nats, "bench.echo2").await?;
    let (remote_key, local_key) = ([serde_json::json!("hop")], [serde_json::json!("local")]);
    for _ in 0..300 {
        client
            .call("counter-remote", "increment", &remote_key)
            .await?;
        client
            .call("counter-local", "increment", &local_key)
            .await?;
        raw.request("bench.echo2", payload.clone()).await?;
    }
    let (mut remote, mut local, mut base) =
        (Samples::default(), Samples::default(), Samples::default());
    for _ in 0..3000 {
        let t = Instant::now();
        client
            .call("counter-remote", "increment", &remote_key)
            .await?;
        remote.push(t.elapsed());
        let t = Instant::now();
        client
            .call("counter-local", "increment", &local_key)
            .await?;
        local.push(t.elapsed());
        let t = Instant::now();
        raw.request("bench.echo2", payload.clone()).await?;
        base.push(t.elapsed());
    }
    println!(
        "counter.increment called from outside: counter on host A, its wasi:keyvalue provider (NATS KV) on host B or on host A; 3000 interleaved calls each:"
    );
    report("  provider on another host", &remote);
    report("  provider on the component's own host", &local);
    report("  raw async-nats request/reply, 16 bytes", &base);
    println!(
        "  provider on another host vs its own: p50 {:+} ({:.2}x), p99 {:+} ; vs the raw round trip p50 {:.2}x",
        Signed(remote.median(), local.median()),
        remote.median().as_secs_f64() / local.median().as_secs_f64(),
        Signed(remote.percentile(0.99), local.percentile(0.99)),
        remote.median().as_secs_f64() / base.median().as_secs_f64(),
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
                    .call("counter-remote", "increment", std::slice::from_ref(&key))
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
        "counter.increment throughput, 8 concurrent callers, provider on another host: {:.0} calls/s ({seconds} s, one run)",
        total as f64 / began.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The difference of two durations, with its sign.
struct Signed(std::time::Duration, std::time::Duration);

impl std::fmt::Display for Signed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0 >= self.1 {
            write!(f, "+{}", fmt(self.0 - self.1))
        } else {
            write!(f, "-{}", fmt(self.1 - self.0))
        }
    }
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

/// How a host in [`cold_starts`] finds the component's compiled code.
#[derive(Clone, Copy, PartialEq)]
enum Cache {
    /// An empty cache of its own, no lattice key: it compiles.
    Empty,
    /// The first host of a lattice with a lattice key: it compiles, and publishes afterwards.
    EmptyPublishing,
    /// A second host of that lattice, its own cache empty: it loads the first one's artifact.
    Lattice,
    /// A cache a previous host filled.
    Warm,
}

async fn cold_starts(nats: &NatsServer, component: &str, runs: usize) -> anyhow::Result<()> {
    use trellis_lattice::control::CompiledFrom;
    let warm_dir = tempfile::tempdir()?;
    let warm_cache = warm_dir.path().display().to_string();
    let key = nkeys::KeyPair::new_cluster();
    let seed = warm_dir.path().join("lattice.nk");
    {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&seed)?;
        writeln!(file, "{}", key.seed()?)?;
    }
    let (seed, public) = (seed.display().to_string(), key.public_key());
    let arms = [
        Cache::Empty,
        Cache::EmptyPublishing,
        Cache::Lattice,
        Cache::Warm,
    ];
    let mut samples: Vec<Samples> = arms.iter().map(|_| Samples::default()).collect();
    for run in 0..=runs {
        // The lattice arm's store is filled by the publishing arm of the same run.
        let lattice = format!("cold{run}");
        for (arm, cache) in arms.iter().enumerate() {
            let own_dir = tempfile::tempdir()?;
            let own = own_dir.path().display().to_string();
            let mut flags = vec!["--cache-dir".to_string()];
            flags.push(if *cache == Cache::Warm {
                warm_cache.clone()
            } else {
                own
            });
            match cache {
                Cache::EmptyPublishing => flags.extend(["--lattice-key-file".into(), seed.clone()]),
                Cache::Lattice => flags.extend(["--lattice-public-key".into(), public.clone()]),
                Cache::Empty | Cache::Warm => {}
            }
            let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
            let lattice = if *cache == Cache::Empty || *cache == Cache::Warm {
                format!("{lattice}-{arm}")
            } else {
                lattice.clone()
            };
            let host = HostProcess::start(&nats.url(), &lattice, &[], &flags).await;
            let client = nats.client(&lattice).await;
            let t = Instant::now();
            let scaled = client
                .scale_component(host.id(), &start("c", component))
                .await?;
            let v = client
                .call("c", "greet", &[serde_json::json!("Ada")])
                .await?;
            let took = t.elapsed();
            anyhow::ensure!(v == "Hello, Ada!");
            let expected = match cache {
                Cache::Empty | Cache::EmptyPublishing => CompiledFrom::Compiled,
                Cache::Lattice => CompiledFrom::Lattice,
                // The first run fills the warm cache.
                Cache::Warm if run == 0 => CompiledFrom::Compiled,
                Cache::Warm => CompiledFrom::Disk,
            };
            anyhow::ensure!(
                scaled.compiled == Some(expected),
                "run {run}: compiled code from {:?}, expected {expected:?}",
                scaled.compiled
            );
            // A graceful stop finishes writing (and publishing) the compiled artifact.
            let mut host = host;
            anyhow::ensure!(host.terminate().await.success(), "the host stopped cleanly");
            if run > 0 {
                samples[arm].push(took);
            }
        }
    }
    println!(
        "{component}: component start -> first successful call (new host each run; {runs} runs each, interleaved):"
    );
    report("  compiled-component cache empty (compiles)", &samples[0]);
    report(
        "  same, first host of a lattice with a lattice key (compiles, then publishes)",
        &samples[1],
    );
    report(
        "  second host, own cache empty, loads the lattice's signed artifact",
        &samples[2],
    );
    report("  compiled-component cache warm", &samples[3]);
    Ok(())
}
