//! How the lattice's costs grow with its size: 10, 50 and 100 `trellis-host` processes on
//! this machine in one lattice (small pools, `--pool-instances 16`, so they fit), one
//! `trellis-deploy`, one app of 10 components × 100 replicas (1,000 replicas). For each size,
//! on a fresh nats-server (its monitoring port read for traffic):
//!
//! - deploy: `app deploy` → status `deployed` and all 1,000 replicas in the inventories;
//! - idle: NATS messages and bytes per second the lattice sends with nothing to do
//!   (heartbeats, presence refreshes, the manager's own), over 3 heartbeat intervals;
//! - heal: SIGKILL of 10 % of the hosts → all 1,000 replicas running on the others;
//! - the manager's CPU in each phase, and per reconcile pass that issued commands.
//!
//! Greeter is compiled into the hosts' shared cache before the first size. Hosts keep the
//! default 5 s heartbeat, so heal time is mostly the 3 missed heartbeats
//! after which a silent host is gone. Ratios are to the 10-host row of the same run; each
//! row is one run.
//!
//! Run: `cargo build --release --bins && cargo bench -p trellis-tests --bench scaling`
//! (`TRELLIS_SCALING_SIZES=10,50,100` to choose sizes).

use std::time::{Duration, Instant};

use futures::FutureExt as _;
use trellis_lattice::app::AppState;
use trellis_lattice::LatticeClient;
use trellis_tests::deploy::greeter_fleet;
use trellis_tests::{free_port, HostProcess, ManagerProcess, NatsServer};

#[path = "http/load.rs"]
mod load;

const COMPONENTS: usize = 10;
const REPLICAS: u32 = 100;
const TOTAL: u32 = COMPONENTS as u32 * REPLICAS;
const HEARTBEAT: Duration = Duration::from_secs(5);
const LATTICE: &str = "scale";
const APP: &str = "thousand";

/// The app's replicas on `hosts`, from their inventories (concurrently).
async fn running(client: &LatticeClient, hosts: &[String]) -> u32 {
    let counts = futures::future::join_all(hosts.iter().map(|h| client.inventory(h))).await;
    counts
        .into_iter()
        .flatten()
        .flat_map(|inv| inv.components)
        .filter(|c| c.id.starts_with(&format!("{APP}-")))
        .map(|c| c.replicas)
        .sum()
}

/// `in_msgs` and `in_bytes` of the server (what clients published), from its `/varz`.
fn varz(port: u16) -> (u64, u64) {
    use std::io::{Read as _, Write as _};
    let mut body = String::new();
    if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let _ = s.write_all(b"GET /varz HTTP/1.0\r\nHost: localhost\r\n\r\n");
        let _ = s.take(1 << 20).read_to_string(&mut body);
    }
    let json = body.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let v: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
    (
        v["in_msgs"].as_u64().unwrap_or(0),
        v["in_bytes"].as_u64().unwrap_or(0),
    )
}

/// Reconcile passes that issued commands so far (the manager logs each at debug).
fn passes(manager: &ManagerProcess) -> usize {
    manager
        .log()
        .lines()
        .filter(|l| l.contains("executing"))
        .count()
}

/// The manager's CPU time and the passes that issued commands, from a phase's start.
struct Phase {
    pid: u32,
    cpu: Duration,
    passes: usize,
}

impl Phase {
    fn start(pid: u32, manager: &ManagerProcess) -> Self {
        Self {
            pid,
            cpu: load::cpu_time(pid),
            passes: passes(manager),
        }
    }

    fn end(self, manager: &ManagerProcess) -> (Duration, usize) {
        (
            load::cpu_time(self.pid).saturating_sub(self.cpu),
            passes(manager).saturating_sub(self.passes),
        )
    }
}

/// Polls `done` every `every` until it holds; fails after 300 s.
async fn until<F: std::future::Future<Output = bool>>(
    what: &str,
    every: Duration,
    mut done: impl FnMut() -> F,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    while !done().await {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(300),
            "{what} did not happen in 300 s"
        );
        tokio::time::sleep(every).await;
    }
    Ok(started.elapsed())
}

struct Row {
    hosts: usize,
    start_hosts: Duration,
    deploy: Duration,
    deploy_cpu: Duration,
    deploy_passes: usize,
    idle_msgs: f64,
    idle_bytes: f64,
    idle_cpu_per_s: Duration,
    heal: Duration,
    heal_cpu: Duration,
    heal_passes: usize,
}

async fn measure(hosts_n: usize) -> anyhow::Result<Row> {
    let monitor = free_port();
    let nats = NatsServer::start_with_config(&format!("http: \"127.0.0.1:{monitor}\"\n")).await;
    let started = Instant::now();
    let mut hosts = Vec::with_capacity(hosts_n);
    for _ in 0..hosts_n {
        hosts.push(
            HostProcess::start(
                &nats.url(),
                LATTICE,
                &[],
                &["--pool-instances", "16", "--log", "warn"],
            )
            .await,
        );
    }
    let start_hosts = started.elapsed();
    let manager = ManagerProcess::start_logging(
        &nats.url(),
        LATTICE,
        "warn,trellis_deploy::reconcile=debug",
        &[],
    )
    .await;
    let mpid = manager.pid().unwrap_or(0);
    let client = nats.client(LATTICE).await;
    let ids: Vec<String> = hosts.iter().map(|h| h.id().to_string()).collect();

    // A new leader acts once it has heard every live host, or after one heartbeat interval
    // (its warm-up): wait that out, so the deploy measures placing, as in earlier runs.
    tokio::time::sleep(HEARTBEAT + Duration::from_secs(1)).await;
    let phase = Phase::start(mpid, &manager);
    let started = Instant::now();
    client
        .put_app(
            "thousand.yaml",
            &greeter_fleet(APP, "v1", COMPONENTS, REPLICAS),
        )
        .await?;
    let changed = client.deploy_app(APP, Some("v1")).await?;
    until(
        &format!("{hosts_n} hosts: deployed"),
        Duration::from_millis(20),
        || async {
            let deployed = client.app_status(APP).await.is_ok_and(|s| {
                s.generation >= changed.generation && s.status == AppState::Deployed
            });
            deployed && running(&client, &ids).await == TOTAL
        },
    )
    .await?;
    let deploy = started.elapsed();
    let (deploy_cpu, deploy_passes) = phase.end(&manager);

    // Idle: let the deploy's own traffic pass, then count three heartbeat intervals.
    tokio::time::sleep(HEARTBEAT).await;
    let window = HEARTBEAT * 3;
    let ((m0, b0), c0) = (varz(monitor), load::cpu_time(mpid));
    tokio::time::sleep(window).await;
    let (m1, b1) = varz(monitor);
    let idle_cpu = load::cpu_time(mpid).saturating_sub(c0);
    let secs = window.as_secs_f64();

    // Heal: SIGKILL every tenth host.
    let victims = (hosts_n / 10).max(1);
    for h in hosts.iter_mut().take(victims) {
        h.kill();
    }
    let survivors: Vec<String> = ids[victims..].to_vec();
    let phase = Phase::start(mpid, &manager);
    let heal = until(
        &format!("{hosts_n} hosts: healed"),
        Duration::from_millis(100),
        || running(&client, &survivors).map(|n| n >= TOTAL),
    )
    .await?;
    let (heal_cpu, heal_passes) = phase.end(&manager);
    drop(manager);
    drop(hosts);
    Ok(Row {
        hosts: hosts_n,
        start_hosts,
        deploy,
        deploy_cpu,
        deploy_passes,
        idle_msgs: m1.saturating_sub(m0) as f64 / secs,
        idle_bytes: b1.saturating_sub(b0) as f64 / secs,
        idle_cpu_per_s: idle_cpu.div_f64(secs),
        heal,
        heal_cpu,
        heal_passes,
    })
}

/// Compiles greeter once into the hosts' shared compiled cache, so no size pays for the
/// first compile (hosts starting a component nobody compiled yet each compile it at once).
async fn warm_cache() -> anyhow::Result<()> {
    let nats = NatsServer::start().await;
    let host = HostProcess::start(&nats.url(), LATTICE, &[], &["--log", "warn"]).await;
    let client = nats.client(LATTICE).await;
    client
        .scale_component(
            host.id(),
            &trellis_tests::scale_request("warm", "greeter", 1),
        )
        .await?;
    Ok(())
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1e3)
}

fn per_pass(cpu: Duration, passes: usize) -> String {
    if passes == 0 {
        return "-".into();
    }
    format!("{:.1} ms", cpu.as_secs_f64() * 1e3 / passes as f64)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let sizes: Vec<usize> = std::env::var("TRELLIS_SCALING_SIZES")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .filter(|v: &Vec<usize>| !v.is_empty())
        .unwrap_or_else(|| vec![10, 50, 100]);
    println!(
        "lattice growth: one app of {COMPONENTS} components x {REPLICAS} replicas, hosts with 5 s heartbeats, one run per size ({} cores)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    warm_cache().await?;
    let mut rows = Vec::new();
    for n in sizes {
        let row = measure(n).await?;
        println!(
            "\n{} hosts (started in {}):\n  deploy -> {TOTAL} running   {:>8}   manager CPU {:>7} in {} passes ({} per pass)\n  idle NATS traffic        {:>8.0} msg/s {:>9.0} B/s   manager CPU {:.2} ms/s\n  SIGKILL {} hosts -> healed {:>8}   manager CPU {:>7} in {} passes ({} per pass)",
            row.hosts,
            ms(row.start_hosts),
            ms(row.deploy),
            ms(row.deploy_cpu),
            row.deploy_passes,
            per_pass(row.deploy_cpu, row.deploy_passes),
            row.idle_msgs,
            row.idle_bytes,
            row.idle_cpu_per_s.as_secs_f64() * 1e3,
            (row.hosts / 10).max(1),
            ms(row.heal),
            ms(row.heal_cpu),
            row.heal_passes,
            per_pass(row.heal_cpu, row.heal_passes),
        );
        rows.push(row);
    }
    if let Some(first) = rows.first() {
        println!("\nratios to the {}-host row:", first.hosts);
        for r in &rows[1..] {
            let x = r.hosts as f64 / first.hosts as f64;
            println!(
                "  {:>4} hosts ({x:.0}x): deploy {:.2}x, deploy CPU {:.2}x, idle msg/s {:.2}x, idle B/s {:.2}x, heal {:.2}x, heal CPU {:.2}x",
                r.hosts,
                r.deploy.as_secs_f64() / first.deploy.as_secs_f64(),
                r.deploy_cpu.as_secs_f64() / first.deploy_cpu.as_secs_f64().max(1e-9),
                r.idle_msgs / first.idle_msgs.max(1e-9),
                r.idle_bytes / first.idle_bytes.max(1e-9),
                r.heal.as_secs_f64() / first.heal.as_secs_f64(),
                r.heal_cpu.as_secs_f64() / first.heal_cpu.as_secs_f64().max(1e-9),
            );
        }
    }
    Ok(())
}
