//! HTTP ingress figures, Trellis against a tuned `wasmtime serve` of the same wasmtime
//! version on the same component and machine, in one run:
//! - hello-world throughput with wrk (-t2 -c32, and -c150), p50/p99 latency, server CPU per
//!   request — A/B runs interleaved, medians and ratios;
//! - the same through a route whose component runs on another host (lattice hop);
//! - `component start` → first 200 (compiled cache warm and empty), link put → first 200;
//! - density: 1,000 idle components on one host (RSS and start time per component);
//! - idle host RSS.
//!
//! Needs `wrk` (apt-get install wrk), `cc`, and `wasmtime` 45 on PATH or in ~/.cargo/bin
//! (`cargo install wasmtime-cli --version 45.0.3 --locked`).
//! Run: `cargo build --release --bins && cargo bench -p trellis-tests --bench http`.
//! `TRELLIS_BENCH_SECONDS` sets the length of each wrk run (default 10).
//! `TRELLIS_BENCH_BASELINE_HOST=/path/to/trellis-host` adds an earlier build of the host to
//! the throughput rows, interleaved with the others (before/after comparisons in one run).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use trellis_lattice::control::ScaleComponent;
use trellis_tests::stats::Samples;
use trellis_tests::{component_ref, free_port, route, start_http_server, HostProcess, NatsServer};

#[path = "http/density.rs"]
mod density;
#[path = "http/load.rs"]
mod load;

use density::{density, wasmtime_compile_ms};
use load::{interleaved, report, rss_kib, wait_for_http, Run, Target};

fn find_wasmtime() -> PathBuf {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([home.join(".cargo/bin")])
        .map(|d| d.join("wasmtime"))
        .find(|p| p.is_file())
        .expect("wasmtime is not installed: cargo install wasmtime-cli --version 45.0.3 --locked")
}

fn build_shim(out: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/nodelay.c");
    let so = out.join("nodelay.so");
    let status = Command::new("cc")
        .args(["-shared", "-fPIC", "-O2", "-o"])
        .arg(&so)
        .arg(&src)
        .arg("-ldl")
        .status()
        .expect("running cc");
    assert!(status.success(), "building the TCP_NODELAY shim failed");
    so
}

async fn first_200(url: &str) -> Duration {
    let client = reqwest::Client::new();
    let start = Instant::now();
    loop {
        if let Ok(r) = client.get(url).send().await {
            if r.status().is_success() {
                return start.elapsed();
            }
        }
        if start.elapsed() > Duration::from_secs(60) {
            panic!("{url} never answered 200");
        }
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
}

fn hello(id: &str, replicas: u32) -> ScaleComponent {
    ScaleComponent {
        component_id: id.into(),
        image: component_ref("hello-http"),
        replicas,
        config: Vec::new(),
        max_memory_bytes: None,
        timeout_ms: None,
        annotations: Default::default(),
        ..Default::default()
    }
}

struct Wasmtime(Child);

impl Drop for Wasmtime {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// wrk runs per row, interleaved with the other rows of the same table.
const ROUNDS: usize = 5;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let seconds = load::seconds();
    let scratch = tempfile::tempdir()?;
    let shim = build_shim(scratch.path());
    let nats = NatsServer::start().await;
    println!(
        "machine: {} cores; wrk -t2, {seconds}s per run, runs interleaved",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );

    // Idle host RSS, before anything runs on it.
    let host = HostProcess::start(&nats.url(), "http", &[], &[]).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_rss = rss_kib(host.pid().unwrap_or(0));
    let client = nats.client("http").await;
    client
        .scale_component(host.id(), &hello("hello", 256))
        .await?;
    let trellis_url = start_http_server(&client, host.id(), "web", &[]).await;
    route(&client, "web", "all", "hello", None, None).await;
    let trellis_url = format!("{trellis_url}/");
    wait_for_http(&trellis_url);

    let wasmtime_port = free_port();
    let wasmtime_url = format!("http://127.0.0.1:{wasmtime_port}/");
    let _wasmtime = Wasmtime(
        Command::new(find_wasmtime())
            .env_remove("RUST_BACKTRACE")
            .args(["serve", "-S", "cli=y", "--addr", &format!("127.0.0.1:{wasmtime_port}")])
            // The same keep-resident as the Trellis host's default, or the comparison is moot.
            .args(["-O", "pooling-allocator=y,pooling-memory-keep-resident=131072,pooling-table-keep-resident=131072"])
            .arg(trellis_tests::component("hello-http"))
            .env("LD_PRELOAD", &shim)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    wait_for_http(&wasmtime_url);
    let wasmtime_pid = _wasmtime.0.id();
    let host_pid = host.pid().unwrap_or(0);

    // An earlier build of the host, in a lattice of its own, when asked for.
    let baseline = match std::env::var_os("TRELLIS_BENCH_BASELINE_HOST") {
        Some(binary) => {
            let h =
                HostProcess::start_binary(Path::new(&binary), &nats.url(), "baseline", &[], &[])
                    .await;
            let c = nats.client("baseline").await;
            c.scale_component(h.id(), &hello("hello", 256)).await?;
            let url = start_http_server(&c, h.id(), "web", &[]).await;
            route(&c, "web", "all", "hello", None, None).await;
            let url = format!("{url}/");
            wait_for_http(&url);
            println!("baseline host: {}", Path::new(&binary).display());
            Some((h, url))
        }
        None => None,
    };

    let mut targets = vec![
        Target {
            name: "trellis (built-in server, same host)",
            url: trellis_url.clone(),
            pid: host_pid,
        },
        Target {
            name: "wasmtime serve 45, TCP_NODELAY, same keep-resident",
            url: wasmtime_url.clone(),
            pid: wasmtime_pid,
        },
    ];
    if let Some((h, url)) = &baseline {
        targets.push(Target {
            name: "baseline build of the host",
            url: url.clone(),
            pid: h.pid().unwrap_or(0),
        });
    }
    for connections in [32u32, 150] {
        let runs = interleaved(&targets, connections, seconds, ROUNDS);
        println!(
            "hello-http, {connections} connections ({ROUNDS} interleaved rounds of {seconds} s):"
        );
        let m: Vec<Run> = targets
            .iter()
            .zip(&runs)
            .map(|(t, r)| report(&format!("  {}", t.name), r))
            .collect();
        println!(
            "  ratio trellis/wasmtime: throughput {:.2}x, server CPU per request {:.2}x",
            m[0].rps / m[1].rps.max(1.0),
            m[0].cpu_us_per_req / m[1].cpu_us_per_req.max(0.001)
        );
        if let Some(b) = m.get(2) {
            println!(
                "  ratio this build/baseline: throughput {:.2}x, server CPU per request {:.2}x",
                m[0].rps / b.rps.max(1.0),
                m[0].cpu_us_per_req / b.cpu_us_per_req.max(0.001)
            );
        }
    }
    drop(_wasmtime);
    drop(baseline);

    // The lattice hop: the server on this host, the component only on another; interleaved
    // with the same-host route.
    let worker = HostProcess::start(&nats.url(), "http", &[], &[]).await;
    client
        .scale_component(worker.id(), &hello("remote", 256))
        .await?;
    route(&client, "web", "remote", "remote", Some("/remote"), None).await;
    let remote_url = format!("{}remote", trellis_url);
    wait_for_http(&remote_url);
    let hop_targets = [
        Target {
            name: "route to a component on another host (lattice hop)",
            url: remote_url,
            pid: host_pid,
        },
        Target {
            name: "route to a component on the server's host",
            url: trellis_url.clone(),
            pid: host_pid,
        },
    ];
    let runs = interleaved(&hop_targets, 32, seconds, ROUNDS);
    println!("hello-http through the lattice, 32 connections ({ROUNDS} interleaved rounds; CPU is the server host's):");
    let hop = report(&format!("  {}", hop_targets[0].name), &runs[0]);
    let same = report(&format!("  {}", hop_targets[1].name), &runs[1]);
    println!(
        "  ratio lattice hop/same host: throughput {:.2}x",
        hop.rps / same.rps.max(1.0)
    );

    // Component start -> first 200, with the compiled cache warm and empty (new host each time).
    let (mut warm, mut cold, mut fast, mut link_to_200) = (
        Samples::default(),
        Samples::default(),
        Samples::default(),
        Samples::default(),
    );
    let warm_cache = scratch.path().join("warm");
    for run in 0..=5 {
        for variant in ["warm", "cold", "fast"] {
            let cache_dir = match variant {
                "warm" => warm_cache.clone(),
                _ => scratch.path().join(format!("{variant}{run}")),
            };
            let mut args = vec!["--cache-dir".to_string(), cache_dir.display().to_string()];
            if variant == "fast" {
                args.push("--fast-compile".into());
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let lattice = format!("start{run}{variant}");
            let h = HostProcess::start(&nats.url(), &lattice, &[], &args).await;
            let c = nats.client(&lattice).await;
            let base = start_http_server(&c, h.id(), "web", &[]).await;
            route(&c, "web", "all", "hello", None, None).await;
            let t = Instant::now();
            c.scale_component(h.id(), &hello("hello", 8)).await?;
            let took = t.elapsed() + first_200(&format!("{base}/")).await;
            if run == 0 {
                continue; // fills the warm cache and warms the page cache
            }
            match variant {
                "warm" => warm.push(took),
                "cold" => cold.push(took),
                _ => fast.push(took),
            }
            if variant == "warm" {
                // Link put -> first 200 for a running component.
                c.scale_component(h.id(), &hello("hello2", 8)).await?;
                let t = Instant::now();
                route(&c, "web", "second", "hello2", Some("/second"), None).await;
                let took = t.elapsed() + first_200(&format!("{base}/second")).await;
                link_to_200.push(took);
            }
        }
    }
    println!(
        "component start -> first 200 (host running, route in place; 5 runs each, interleaved):"
    );
    trellis_tests::stats::report("  compiled cache warm", &warm);
    trellis_tests::stats::report("  compiled cache empty (compiles)", &cold);
    trellis_tests::stats::report("  cache empty, host --fast-compile", &fast);
    trellis_tests::stats::report("link put -> first 200 (component running)", &link_to_200);
    let (compile, startup) = wasmtime_compile_ms(&trellis_tests::component("hello-http"), 5);
    println!(
        "  reference, same run: `wasmtime compile` of hello-http {:.1} ms median of 5, {:.1} ms of it the tool's own start-up: {:.1} ms compiling",
        compile,
        startup,
        compile - startup
    );

    density(&nats, scratch.path()).await?;
    println!(
        "idle host RSS (no components): {:.1} MiB",
        idle_rss as f64 / 1024.0
    );
    Ok(())
}
