//! How fast a host starts: process spawn → first answered control request (the host's
//! `get`, asked every millisecond until it answers), beside the floor of the same run —
//! spawning the same executable with `--version` until it exits — and where the time goes,
//! read off the host's own log: the wasm engine ready, NATS connected, the host started.
//! Each round starts a fresh host with a new key, an empty state directory and its own
//! compiled-component cache; rounds alternate floor and host.
//!
//!
//! Then the CLI: `trellis component start greeter --host ID` (warm compiled cache) from spawn
//! to exit, beside the same start asked by a client already connected in this process (the
//! host's reply says the component serves) and the CLI's own floor (`trellis --version`);
//! and the broadcasts: a ping from that client, `trellis get hosts`, and a start placed by
//! an auction (`--constraint`), each ending when every live host has answered.
//!
//! With `TRELLIS_BENCH_BOARD_HOST=target/edge/trellis-host` (`scripts/board-build.sh`) each
//! round also starts a board's build the same way, right after the release host: how its
//! size-optimised code starts.
//!
//! Run: `cargo build --release --bins && cargo bench -p trellis-tests --bench start`.
//! `TRELLIS_BENCH_RUNS` sets the number of rounds (default 20).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use trellis_tests::stats::{report, Samples};
use trellis_tests::{scale_request, HostProcess, NatsServer};

const MILESTONES: [(&str, &str); 3] = [
    ("wasm engine ready", "spawn → wasm engine ready (host log)"),
    (
        "connected successfully",
        "spawn → NATS connected (host log)",
    ),
    ("host started", "spawn → host started (host log)"),
];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let runs: usize = std::env::var("TRELLIS_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let nats = NatsServer::start().await;
    let client = nats.client("start-bench").await;
    let binary = trellis_tests::bin("trellis-host");
    let board = std::env::var_os("TRELLIS_BENCH_BOARD_HOST").map(std::path::PathBuf::from);
    let mut floor = Samples::default();
    let mut answered = Samples::default();
    let mut milestones: Vec<Samples> = MILESTONES.iter().map(|_| Samples::default()).collect();
    let (mut board_floor, mut board_answered) = (Samples::default(), Samples::default());
    // Two rounds warm the page cache and the server; they are not samples.
    for round in 0..runs + 2 {
        let (version_took, took, text, spawned_at) = start_once(&binary, &nats, &client).await?;
        if let Some(board) = &board {
            let (version, took, _, _) = start_once(board, &nats, &client).await?;
            if round >= 2 {
                board_floor.push(version);
                board_answered.push(took);
            }
        }
        if round < 2 {
            continue;
        }
        floor.push(version_took);
        answered.push(took);
        for ((needle, _), samples) in MILESTONES.iter().zip(&mut milestones) {
            if let Some(at) = logged_at(&text, needle, spawned_at) {
                samples.push(at);
            }
        }
    }
    println!(
        "machine: {} cores; {runs} rounds, fresh host (new key, empty state and cache) each",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    report("floor: spawn `trellis-host --version` → exit", &floor);
    for ((_, name), samples) in MILESTONES.iter().zip(&milestones) {
        report(name, samples);
    }
    report("spawn → first answered control request", &answered);
    if let Some(board) = &board {
        println!("board's build: {}", board.display());
        report("board's build, floor: `--version` → exit", &board_floor);
        report(
            "board's build, spawn → first answered control request",
            &board_answered,
        );
    }
    cli(&nats, runs).await
}

/// One fresh host of `binary` (new key, empty state and cache): how long `--version` took,
/// how long until it answered, its log and when it was spawned.
async fn start_once(
    binary: &std::path::Path,
    nats: &NatsServer,
    client: &trellis_lattice::LatticeClient,
) -> anyhow::Result<(Duration, Duration, String, SystemTime)> {
    let t = Instant::now();
    let status = Command::new(binary)
        .arg("--version")
        .stdout(Stdio::null())
        .status()?;
    let version_took = t.elapsed();
    anyhow::ensure!(status.success(), "{} --version failed", binary.display());
    let dir = tempfile::tempdir()?;
    let key = nkeys::KeyPair::new_server();
    let id = key.public_key();
    let log = dir.path().join("host.log");
    let spawned_at = SystemTime::now();
    let t = Instant::now();
    let mut child = Command::new(binary)
        .args(["--nats-url", &nats.url(), "--lattice", "start-bench"])
        .args(["--log", "info"])
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .arg("--cache-dir")
        .arg(dir.path().join("cache"))
        .env("TRELLIS_HOST_SEED", key.seed()?)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .spawn()?;
    let deadline = t + Duration::from_secs(30);
    let took = loop {
        if client.inventory(&id).await.is_ok() {
            break t.elapsed();
        }
        anyhow::ensure!(Instant::now() < deadline, "the host did not answer in 30 s");
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log)?;
    Ok((version_took, took, text, spawned_at))
}

/// `trellis component start` spawn → exit, beside the in-process request and the CLI floor.
async fn cli(nats: &NatsServer, runs: usize) -> anyhow::Result<()> {
    let host = HostProcess::start(&nats.url(), "cli-bench", &[("bench", "yes")], &[]).await;
    let client = nats.client("cli-bench").await;
    let cli = trellis_tests::bin("trellis");
    let image = trellis_tests::component_ref("greeter");
    let (mut floor, mut exited, mut asked) =
        (Samples::default(), Samples::default(), Samples::default());
    let (mut pinged, mut get_hosts, mut by_constraint) =
        (Samples::default(), Samples::default(), Samples::default());
    // The first start compiles (and fills the cache); it is not a sample.
    client
        .scale_component(host.id(), &scale_request("warm", "greeter", 1))
        .await?;
    for round in 0..runs {
        let t = Instant::now();
        let status = Command::new(&cli)
            .arg("--version")
            .stdout(Stdio::null())
            .status()?;
        floor.push(t.elapsed());
        anyhow::ensure!(status.success(), "trellis --version failed");

        let id = format!("by-cli-{round}");
        let start = [
            "component",
            "start",
            &image,
            "--id",
            &id,
            "--host",
            host.id(),
        ];
        exited.push(run_cli(&cli, nats, &start)?);

        let t = Instant::now();
        client
            .scale_component(
                host.id(),
                &scale_request(&format!("by-client-{round}"), "greeter", 1),
            )
            .await?;
        asked.push(t.elapsed());

        let t = Instant::now();
        let hosts = client.hosts().await?;
        pinged.push(t.elapsed());
        anyhow::ensure!(hosts.len() == 1, "one host answers the ping");

        get_hosts.push(run_cli(&cli, nats, &["get", "hosts"])?);

        let id = format!("by-auction-{round}");
        let placed = [
            "component",
            "start",
            &image,
            "--id",
            &id,
            "--constraint",
            "bench=yes",
        ];
        by_constraint.push(run_cli(&cli, nats, &placed)?);
    }
    println!("\n`trellis component start greeter --host ID`, warm compiled cache, {runs} rounds:");
    report("floor: spawn `trellis --version` → exit", &floor);
    report("client in this process: request → serving reply", &asked);
    report("CLI: spawn → exit", &exited);
    println!(
        "CLI exit after the in-process reply (p50 difference): {}",
        trellis_tests::stats::fmt(exited.median().saturating_sub(asked.median()))
    );
    println!("\nbroadcasts, one host in the lattice (they end when every live host answered):");
    report(
        "client in this process: ping → every live host answered",
        &pinged,
    );
    report("CLI: `trellis get hosts`, spawn → exit", &get_hosts);
    report(
        "CLI: `component start --constraint`, spawn → exit",
        &by_constraint,
    );
    Ok(())
}

/// Runs `trellis ARGS` against the bench lattice: spawn → exit, which must be a success.
fn run_cli(cli: &std::path::Path, nats: &NatsServer, args: &[&str]) -> anyhow::Result<Duration> {
    let t = Instant::now();
    let out = Command::new(cli)
        .args(["--nats-url", &nats.url(), "--lattice", "cli-bench"])
        .args(args)
        .stdin(Stdio::null())
        .output()?;
    let took = t.elapsed();
    anyhow::ensure!(
        out.status.success(),
        "trellis {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(took)
}

/// When the first log line containing `needle` was written, after `start`. Lines of the
/// default log format begin with an RFC 3339 timestamp.
fn logged_at(log: &str, needle: &str, start: SystemTime) -> Option<Duration> {
    let line = log.lines().find(|l| l.contains(needle))?;
    let stamp = line.split_whitespace().next()?;
    humantime::parse_rfc3339(stamp)
        .ok()?
        .duration_since(start)
        .ok()
}
