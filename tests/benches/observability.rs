//! What OpenTelemetry export costs, in one run: HTTP hello req/s and server CPU per request,
//! and the `trellis call` round trip, on hosts that differ only in their telemetry — off, on
//! with every trace sampled, on with `parentbased_traceidratio` 0.01 — each exporting over
//! HTTP/protobuf (the default protocol) to its own OTLP receiver in this process. Those
//! receivers count spans by walking their wire format, so that the collector, which in
//! production runs elsewhere, takes little of the two cores the host and wrk share; one more
//! sampled host exports to a receiver that decodes every span into objects, to show what a
//! collector on the same cores costs. Each receiver also reports the spans its host dropped
//! (the host's `trellis.telemetry.dropped`), since a host that drops spans does less work.
//! wrk runs are interleaved across the hosts; ratios are to the "off" host of the same run.
//!
//! Run: `cargo build --release --bins && cargo bench -p trellis-tests --bench observability`.
//! `TRELLIS_BENCH_SECONDS` sets the length of each wrk run (default 10).

use std::time::{Duration, Instant};

use trellis_tests::stats::Samples;
use trellis_tests::{
    route, scale_request, start_http_server, HostProcess, NatsServer, OtlpReceiver, Protocol,
};

/// How a mode's host exports.
enum Export {
    Off,
    /// To a receiver that walks the wire format.
    Counted(&'static [(&'static str, &'static str)]),
    /// To a receiver that decodes every span.
    Decoded,
}

#[path = "http/load.rs"]
mod load;

use load::{interleaved, report, wait_for_http, Target};

const ROUNDS: usize = 5;
const CALLS: usize = 3000;

struct Mode {
    name: &'static str,
    lattice: &'static str,
    export: Export,
}

const RATIO: &[(&str, &str)] = &[
    ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
    ("OTEL_TRACES_SAMPLER_ARG", "0.01"),
];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let seconds = load::seconds();
    let nats = NatsServer::start().await;
    let modes = [
        Mode {
            name: "observability off",
            lattice: "obs-off",
            export: Export::Off,
        },
        Mode {
            name: "on, every trace sampled",
            lattice: "obs-on",
            export: Export::Counted(&[]),
        },
        Mode {
            name: "on, parentbased_traceidratio 0.01",
            lattice: "obs-ratio",
            export: Export::Counted(RATIO),
        },
        Mode {
            name: "on, every trace sampled, decoding receiver",
            lattice: "obs-decoded",
            export: Export::Decoded,
        },
    ];
    let mut receivers = Vec::new();
    for mode in &modes {
        receivers.push(match mode.export {
            Export::Off => None,
            Export::Counted(_) => Some(OtlpReceiver::start_wire_counting().await),
            Export::Decoded => Some(OtlpReceiver::start_counting().await),
        });
    }
    println!(
        "machine: {} cores; wrk -t2 -c32, {seconds}s per run, {ROUNDS} runs per row, interleaved",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );

    let mut hosts = Vec::new();
    let mut targets = Vec::new();
    for (mode, receiver) in modes.iter().zip(&receivers) {
        let env = mode_env(mode, receiver.as_ref());
        let env = trellis_tests::otlp::pairs(&env);
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

    // Everything queued has left, and the drop counts been reported, by the next intervals.
    tokio::time::sleep(Duration::from_secs(METRIC_INTERVAL_MS / 1000 + 2)).await;
    println!("\nspans received and dropped, per host (the host's own count of what its full queue dropped):");
    for (mode, receiver) in modes.iter().zip(&receivers) {
        if let Some(r) = receiver {
            let c = r.counted();
            println!(
                "{:<46} {:>9} received  {:>9} dropped  ({} log records, {} metric points)",
                mode.name,
                c.spans,
                r.dropped_spans(),
                c.logs,
                c.points
            );
        }
    }
    Ok(())
}

/// Drop counts arrive with the metrics; often enough to have the final one at the end.
const METRIC_INTERVAL_MS: u64 = 5000;

/// A mode's variables: production-like export delays, not the tests' short ones.
fn mode_env(mode: &Mode, receiver: Option<&OtlpReceiver>) -> Vec<(String, String)> {
    let Some(receiver) = receiver else {
        return Vec::new();
    };
    let mut env: Vec<(String, String)> = receiver
        .env(Protocol::HttpProtobuf)
        .into_iter()
        .filter(|(k, _)| !k.ends_with("SCHEDULE_DELAY") && k != "OTEL_METRIC_EXPORT_INTERVAL")
        .collect();
    env.push((
        "OTEL_METRIC_EXPORT_INTERVAL".into(),
        METRIC_INTERVAL_MS.to_string(),
    ));
    if let Export::Counted(extra) = mode.export {
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    }
    env
}
