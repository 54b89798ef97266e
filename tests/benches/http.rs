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
use trellis_lattice::LatticeClient;
use trellis_tests::stats::{fmt, Samples};
use trellis_tests::{component_ref, free_port, route, start_http_server, HostProcess, NatsServer};

/// One wrk run.
#[derive(Clone, Copy, Debug, Default)]
struct Run {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    cpu_us_per_req: f64,
    errors: u64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    if v.is_empty() {
        0.0
    } else {
        v[v.len() / 2]
    }
}

/// User + system CPU time of a process (and its threads), from /proc.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of stat (utime, stime) are 11 and 12 after the command name.
    let ticks: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_micros(ticks * 1_000_000 / hz)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn ms(value: &str) -> f64 {
    let (num, unit) = value.split_at(
        value
            .find(|c: char| c.is_ascii_alphabetic())
            .unwrap_or(value.len()),
    );
    let n: f64 = num.parse().unwrap_or(0.0);
    match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        "m" => n * 60_000.0,
        _ => n,
    }
}

fn wrk(url: &str, connections: u32, seconds: u64, server_pid: u32) -> Run {
    let cpu_before = cpu_time(server_pid);
    let out = Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "--latency",
            url,
        ])
        .output()
        .expect("running wrk (apt-get install wrk)");
    let cpu = cpu_time(server_pid).saturating_sub(cpu_before);
    let text = String::from_utf8_lossy(&out.stdout);
    let mut run = Run::default();
    let mut requests = 0u64;
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", v] => run.rps = v.parse().unwrap_or(0.0),
            ["50%", v] => run.p50_ms = ms(v),
            ["99%", v] => run.p99_ms = ms(v),
            [n, "requests", "in", ..] => requests = n.parse().unwrap_or(0),
            ["Non-2xx", "or", "3xx", "responses:", n] => {
                run.errors += n.parse::<u64>().unwrap_or(0)
            }
            ["Socket", "errors:", rest @ ..] => {
                run.errors += rest
                    .iter()
                    .filter_map(|w| w.trim_matches(',').parse::<u64>().ok())
                    .sum::<u64>()
            }
            _ => {}
        }
    }
    if requests > 0 {
        run.cpu_us_per_req = cpu.as_secs_f64() * 1e6 / requests as f64;
    }
    run
}

fn report(name: &str, runs: &[Run]) -> Run {
    let m = Run {
        rps: median(runs.iter().map(|r| r.rps).collect()),
        p50_ms: median(runs.iter().map(|r| r.p50_ms).collect()),
        p99_ms: median(runs.iter().map(|r| r.p99_ms).collect()),
        cpu_us_per_req: median(runs.iter().map(|r| r.cpu_us_per_req).collect()),
        errors: runs.iter().map(|r| r.errors).sum(),
    };
    let all: Vec<String> = runs.iter().map(|r| format!("{:.0}", r.rps)).collect();
    println!(
        "{name:<44} {:>9.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms  {:>6.1} µs CPU/req  errors {}  (runs: {})",
        m.rps, m.p50_ms, m.p99_ms, m.cpu_us_per_req, m.errors, all.join(", ")
    );
    m
}

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

fn wait_for_http(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let ok = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", url])
            .output()
            .map(|o| o.stdout == b"200")
            .unwrap_or(false);
        if ok {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{url} did not answer 200 within 30s");
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
    }
}

struct Wasmtime(Child);

impl Drop for Wasmtime {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let seconds: u64 = std::env::var("TRELLIS_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
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
            let pid = h.pid().unwrap_or(0);
            println!("baseline host: {}", Path::new(&binary).display());
            Some((h, url, pid))
        }
        None => None,
    };

    for connections in [32u32, 150] {
        let rounds = if connections == 32 { 5 } else { 1 };
        let (mut ours, mut theirs, mut before) = (Vec::new(), Vec::new(), Vec::new());
        wrk(&trellis_url, connections, 2, host_pid);
        wrk(&wasmtime_url, connections, 2, wasmtime_pid);
        if let Some((_, url, pid)) = &baseline {
            wrk(url, connections, 2, *pid);
        }
        for _ in 0..rounds {
            ours.push(wrk(&trellis_url, connections, seconds, host_pid));
            theirs.push(wrk(&wasmtime_url, connections, seconds, wasmtime_pid));
            if let Some((_, url, pid)) = &baseline {
                before.push(wrk(url, connections, seconds, *pid));
            }
        }
        println!("hello-http, {connections} connections:");
        let a = report("  trellis (built-in server, same host)", &ours);
        let b = report(
            "  wasmtime serve 45, TCP_NODELAY, same keep-resident",
            &theirs,
        );
        println!(
            "  ratio trellis/wasmtime: throughput {:.2}x, server CPU per request {:.2}x",
            a.rps / b.rps.max(1.0),
            a.cpu_us_per_req / b.cpu_us_per_req.max(0.001)
        );
        if !before.is_empty() {
            let c = report("  baseline build of the host", &before);
            println!(
                "  ratio this build/baseline: throughput {:.2}x, server CPU per request {:.2}x",
                a.rps / c.rps.max(1.0),
                a.cpu_us_per_req / c.cpu_us_per_req.max(0.001)
            );
        }
    }
    drop(_wasmtime);
    drop(baseline);

    // The lattice hop: the server on this host, the component only on another.
    let worker = HostProcess::start(&nats.url(), "http", &[], &[]).await;
    client
        .scale_component(worker.id(), &hello("remote", 256))
        .await?;
    route(&client, "web", "remote", "remote", Some("/remote"), None).await;
    let remote_url = format!("{}remote", trellis_url);
    wait_for_http(&remote_url);
    wrk(&remote_url, 32, 2, host_pid);
    let hop = vec![wrk(&remote_url, 32, seconds, host_pid)];
    println!(
        "hello-http through a route to a component on another host (lattice hop), 32 connections:"
    );
    report("  trellis, server and component on two hosts", &hop);

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
    println!("component start -> first 200 (host running, route in place):");
    trellis_tests::stats::report("  compiled cache warm", &warm);
    trellis_tests::stats::report("  compiled cache empty (compiles)", &cold);
    trellis_tests::stats::report("  cache empty, host --fast-compile", &fast);
    trellis_tests::stats::report("link put -> first 200 (component running)", &link_to_200);

    density(&nats, scratch.path()).await?;
    println!(
        "idle host RSS (no components): {:.1} MiB",
        idle_rss as f64 / 1024.0
    );
    Ok(())
}

/// 1,000 idle components (copies of one component with different ids) on one host.
async fn density(nats: &NatsServer, scratch: &Path) -> anyhow::Result<()> {
    let h = HostProcess::start(
        &nats.url(),
        "density",
        &[],
        &[
            "--cache-dir",
            &scratch.join("density").display().to_string(),
        ],
    )
    .await;
    let c: LatticeClient = nats.client("density").await;
    let pid = h.pid().unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_kib(pid);
    let n = 1000;
    let mut starts = Samples::default();
    let began = Instant::now();
    for i in 0..n {
        let t = Instant::now();
        c.scale_component(h.id(), &hello(&format!("copy-{i:04}"), 1))
            .await?;
        starts.push(t.elapsed());
    }
    let total = began.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_kib(pid);
    println!("density: {n} idle components on one host:");
    println!(
        "  host RSS {:.1} MiB -> {:.1} MiB: {:.1} KiB per component",
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        (after.saturating_sub(before)) as f64 / n as f64
    );
    println!(
        "  start time per component: p50 {} (p99 {}), {} for all {n}",
        fmt(starts.median()),
        fmt(starts.percentile(0.99)),
        fmt(total)
    );
    Ok(())
}
