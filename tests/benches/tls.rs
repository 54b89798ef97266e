//! What TLS on the NATS connections costs HTTP through the lattice: hello-http requests/s
//! (wrk -t2 -c32) through a route whose component runs on another host (the lattice hop of
//! the http bench: the built-in HTTP server on host A, hello-http only on host B), with every
//! NATS connection over TLS (examples/secure's certificates, client certificates verified)
//! against the same setup over plain NATS (the same processes, flags and logging), in one run:
//! rounds interleaved, medians, ratio.
//!
//! Needs `wrk` (apt-get install wrk) and openssl.
//! Run: `cargo build --release --bins && cargo bench -p trellis-tests --bench tls`.
//! `TRELLIS_BENCH_SECONDS` sets the length of each wrk run (default 10).

use trellis_lattice::control::ScaleComponent;
use trellis_lattice::LatticeClient;
use trellis_tests::secure::{SecureLattice, User};
use trellis_tests::{component_ref, route, start_http_server};

#[path = "http/load.rs"]
mod load;

use load::{interleaved, report, wait_for_http, Target};

/// wrk runs per row, interleaved with the other row.
const ROUNDS: usize = 7;

fn hello(id: &str) -> ScaleComponent {
    ScaleComponent {
        component_id: id.into(),
        image: component_ref("hello-http"),
        replicas: 256,
        ..Default::default()
    }
}

/// The HTTP server on `server_host`, hello-http only on `worker`, one route; returns the URL.
async fn hop_route(client: &LatticeClient, server_host: &str, worker: &str) -> String {
    client
        .scale_component(worker, &hello("remote"))
        .await
        .expect("hello-http on the worker");
    let base = start_http_server(client, server_host, "web", &[]).await;
    route(client, "web", "remote", "remote", Some("/remote"), None).await;
    let url = format!("{base}/remote");
    wait_for_http(&url);
    url
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let seconds = load::seconds();
    println!(
        "machine: {} cores; wrk -t2 -c32, {seconds}s per run, {ROUNDS} rounds interleaved",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );

    let tls = SecureLattice::start_tls_only().await;
    let plain = SecureLattice::start_plain().await;
    let mut servers = Vec::new();
    let mut urls = Vec::new();
    for lattice in [&tls, &plain] {
        let server = lattice.host(1).await;
        let worker = lattice.host(2).await;
        let client = lattice.client(User::Operator).await;
        urls.push(hop_route(&client, lattice.key("HOST1_ID"), lattice.key("HOST2_ID")).await);
        servers.push((server, worker));
    }

    let targets = [
        Target {
            name: "lattice hop, NATS over TLS",
            url: urls[0].clone(),
            pid: servers[0].0.pid(),
        },
        Target {
            name: "lattice hop, plain NATS",
            url: urls[1].clone(),
            pid: servers[1].0.pid(),
        },
    ];
    let runs = interleaved(&targets, 32, seconds, ROUNDS);
    println!("hello-http through a route to a component on another host (CPU is the HTTP server host's):");
    let with_tls = report(&format!("  {}", targets[0].name), &runs[0]);
    let without = report(&format!("  {}", targets[1].name), &runs[1]);
    println!(
        "  ratio TLS/plain: throughput {:.2}x, server host CPU per request {:.2}x",
        with_tls.rps / without.rps.max(1.0),
        with_tls.cpu_us_per_req / without.cpu_us_per_req.max(0.001)
    );
    Ok(())
}
