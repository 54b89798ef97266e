//! What OpenTelemetry export costs, in one run: HTTP hello req/s and server CPU per request,
//! and the `trellis call` round trip, on three hosts that differ only in their telemetry —
//! off, on with every trace sampled, on with `parentbased_traceidratio` 0.01 — exporting
//! over gRPC to an OTLP receiver in this process that decodes everything it gets. wrk runs
//! are interleaved across the three; ratios are to the "off" host of the same run.
//!
//! Run: `cargo build --release --bins && cargo bench -p trellis-tests --bench observability`.
//! `TRELLIS_BENCH_SECONDS` sets the length of each wrk run (default 10).

use std::time::{Duration, Instant};

use trellis_tests::stats::Samples;
use trellis_tests::{
    route, scale_request, start_http_server, HostProcess, NatsServer, OtlpReceiver, Protocol,
};

#[path = "http/load.rs"]
mod load;

use load::{interleaved, report, wait_for_http, Target};

const ROUNDS: usize = 5;
const CALLS: usize = 3000;

struct Mode {
    name: &'static str,
    lattice: &'static str,
    env: Vec<(String, String)>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let seconds = load::seconds();
    let receiver = OtlpReceiver::start_counting().await;
    let nats = NatsServer::start().await;
    let on = receiver.env(Protocol::Grpc);
    let mut ratio = on.clone();
    ratio.push((
        "OTEL_TRACES_SAMPLER".into(),
        "parentbased_traceidratio".into(),
    ));
    ratio.push(("OTEL_TRACES_SAMPLER_ARG".into(), "0.01".into()));
    // Production-like export delays, not the tests' short ones.
    let production = |env: Vec<(String, String)>| -> Vec<(String, String)> {
        env.into_iter()
            .filter(|(k, _)| !k.ends_with("SCHEDULE_DELAY") && k != "OTEL_METRIC_EXPORT_INTERVAL")
            .collect()
    };
    let modes = [
        Mode {
            name: "observability off",
            lattice: "obs-off",
            env: Vec::new(),
        },
        Mode {
            name: "on, every trace sampled",
            lattice: "obs-on",
            env: production(on),
        },
        Mode {
            name: "on, parentbased_traceidratio 0.01",
            lattice: "obs-ratio",
            env: production(ratio),
        },
    ];
    println!(
        "machine: {} cores; wrk -t2 -c32, {seconds}s per run, {ROUNDS} runs per row, interleaved",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );

    let mut hosts = Vec::new();
    let mut targets = Vec::new();
    for mode in &modes {
        let env: Vec<(&str, &str)> = mode
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let host = HostProcess::start_with_env(&nats.url(), mode.lattice, &[], &[], &env).await;
        let client = nats.client(mode.lattice).await;
        client
            .scale_component(host.id(), &scale_request("hello", "hello-http", 256))
            .await?;
        client
            .scale_component(host.id(), &scale_request("greeter", "greeter", 4))
            .await?;
        let url = start_http_server(&client, host.id(), "web", &[]).await;
        route(&client, "web", "all", "hello", None, None).await;
        let url = format!("{url}/");
        wait_for_http(&url);
        targets.push(Target {
            name: mode.name,
            url,
            pid: host.pid().unwrap_or(0),
        });
        hosts.push((host, client));
    }

    println!("\nHTTP hello:");
    let runs = interleaved(&targets, 32, seconds, ROUNDS);
    let medians: Vec<_> = targets
        .iter()
        .zip(&runs)
        .map(|(t, r)| report(t.name, r))
        .collect();
    for (t, m) in targets.iter().zip(&medians).skip(1) {
        println!(
            "{:<46} {:.3} of off's req/s, {:.3} of its CPU per request",
            t.name,
            m.rps / medians[0].rps,
            m.cpu_us_per_req / medians[0].cpu_us_per_req
        );
    }

    println!("\ntrellis call greeter.greet round trip ({CALLS} sequential calls per row, interleaved in blocks of 100):");
    let mut samples: Vec<Samples> = modes.iter().map(|_| Samples::default()).collect();
    let args = [serde_json::json!("Ada")];
    for (_, client) in &hosts {
        for _ in 0..200 {
            client.call("greeter", "greet", &args).await?;
        }
    }
    for _ in 0..CALLS / 100 {
        for (i, (_, client)) in hosts.iter().enumerate() {
            for _ in 0..100 {
                let t = Instant::now();
                client.call("greeter", "greet", &args).await?;
                samples[i].push(t.elapsed());
            }
        }
    }
    let off = (samples[0].median(), samples[0].percentile(0.99));
    for (mode, s) in modes.iter().zip(&samples) {
        let (p50, p99) = (s.median(), s.percentile(0.99));
        println!(
            "{:<46} p50 {:>7.1} µs  p99 {:>7.1} µs  ({:.3} / {:.3} of off)",
            mode.name,
            p50.as_secs_f64() * 1e6,
            p99.as_secs_f64() * 1e6,
            p50.as_secs_f64() / off.0.as_secs_f64(),
            p99.as_secs_f64() / off.1.as_secs_f64()
        );
    }

    // Everything queued has left by the next export interval.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let c = receiver.counted();
    println!(
        "\nthe receiver decoded {} spans, {} log records, {} metric points",
        c.spans, c.logs, c.points
    );
    Ok(())
}
