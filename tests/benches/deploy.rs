//! The deployment manager against a real nats-server, three `trellis-host` processes and a
//! `trellis-deploy` process:
//!
//! - `app deploy` → `deployed` for an app of 50 components × 2 replicas (put + deploy through
//!   the API, as the CLI does, until the status says deployed), against the baseline of
//!   placing the same 100 replicas with direct `component.scale` requests (the same
//!   concurrency, no manager);
//! - SIGKILL of a host carrying replicas → every replica running again on the others, with
//!   1 s heartbeats (a host is gone after at most 3 missed heartbeats; a late heartbeat makes
//!   the manager ask the host directly, and a dead host has no subscription left).
//!
//! Run: `cargo build --release --bins && cargo bench -p trellis-tests --bench deploy`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use trellis_lattice::app::AppState;
use trellis_lattice::control::ScaleComponent;
use trellis_lattice::LatticeClient;
use trellis_tests::deploy::greeter_fleet;
use trellis_tests::stats::{fmt, report, Samples};
use trellis_tests::{component_ref, HostProcess, ManagerProcess, NatsServer};

const COMPONENTS: usize = 50;
const REPLICAS: u32 = 2;
/// Commands the manager runs at once for one app (`reconcile::exec`).
const MANAGER_CONCURRENCY: usize = 16;
const RUNS: usize = 5;
const KILLS: usize = 3;
const LATTICE: &str = "bench";

/// Replicas of the app's components per host, counted from the given hosts' inventories.
async fn running(client: &LatticeClient, hosts: &[String]) -> u32 {
    let mut total = 0;
    for h in hosts {
        if let Ok(inv) = client.inventory(h).await {
            total += inv
                .components
                .iter()
                .filter(|c| c.id.starts_with("fifty-"))
                .map(|c| c.replicas)
                .sum::<u32>();
        }
    }
    total
}

async fn wait_status(client: &LatticeClient, state: AppState, generation: u64) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(st) = client.app_status("fifty").await {
            if st.generation >= generation && st.status == state {
                return;
            }
        }
        assert!(Instant::now() < deadline, "timed out waiting for {state}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let nats = NatsServer::start().await;
    let hb = ["--heartbeat-interval", "1s"];
    let mut hosts = Vec::new();
    for tier in ["cloud", "gateway", "edge"] {
        hosts.push(HostProcess::start(&nats.url(), LATTICE, &[("tier", tier)], &hb).await);
    }
    let _manager = ManagerProcess::start(&nats.url(), LATTICE, &[]).await;
    let client = nats.client(LATTICE).await;
    println!(
        "deployment manager: {COMPONENTS} components x {REPLICAS} replicas on 3 hosts ({} cores)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    // Baseline: the same 100 placements as direct scale requests, 16 at a time (what the
    // manager runs at once for one app), on the hosts the manager would pick. Rounds of the
    // baseline and of app deploy/undeploy alternate, so both see the same machine.
    let ids: Vec<String> = hosts.iter().map(|h| h.id().to_string()).collect();
    let requests: Vec<(String, ScaleComponent)> = (0..COMPONENTS)
        .flat_map(|i| {
            let ids = ids.clone();
            (0..REPLICAS as usize).map(move |r| {
                let host = ids[(i + r) % ids.len()].clone();
                let req = ScaleComponent {
                    component_id: format!("base-{i}"),
                    image: component_ref("greeter"),
                    replicas: 1,
                    config: Vec::new(),
                    max_memory_bytes: None,
                    timeout_ms: None,
                    annotations: Default::default(),
                    ..Default::default()
                };
                (host, req)
            })
        })
        .collect();
    let (mut base, mut deploys, mut undeploys) =
        (Samples::default(), Samples::default(), Samples::default());
    for run in 0..=RUNS {
        let started = Instant::now();
        let results: Vec<_> = futures::stream::iter(requests.iter())
            .map(|(h, r)| client.scale_component(h, r))
            .buffer_unordered(MANAGER_CONCURRENCY)
            .collect()
            .await;
        let took = started.elapsed();
        for r in results {
            r?;
        }
        let stops: Vec<_> = futures::stream::iter(requests.iter())
            .map(|(h, r)| {
                let mut stop = r.clone();
                stop.replicas = 0;
                let h = h.clone();
                let client = &client;
                async move { client.scale_component(&h, &stop).await }
            })
            .buffer_unordered(MANAGER_CONCURRENCY)
            .collect()
            .await;
        for r in stops {
            r?;
        }

        let version = format!("v{run}");
        let text = greeter_fleet("fifty", &version, COMPONENTS, REPLICAS);
        let started = Instant::now();
        client.put_app("fifty.yaml", &text).await?;
        let changed = client.deploy_app("fifty", Some(&version)).await?;
        wait_status(&client, AppState::Deployed, changed.generation).await;
        let deploy_took = started.elapsed();
        assert_eq!(running(&client, &ids).await, COMPONENTS as u32 * REPLICAS);
        let started = Instant::now();
        let changed = client.undeploy_app("fifty").await?;
        wait_status(&client, AppState::Undeployed, changed.generation).await;
        let undeploy_took = started.elapsed();
        // The first round warms up; it is not a sample.
        if run > 0 {
            base.push(took);
            deploys.push(deploy_took);
            undeploys.push(undeploy_took);
        }
    }
    report(
        "baseline: 100 direct component.scale requests, 16 at a time",
        &base,
    );
    report("app deploy -> deployed (50 x 2)", &deploys);
    report("app undeploy -> undeployed (50 x 2)", &undeploys);
    println!(
        "  ratio deploy / baseline (p50): {:.2}",
        deploys.median().as_secs_f64() / base.median().as_secs_f64()
    );

    // Host loss: deploy once, then kill the host carrying the most replicas, KILLS times.
    let changed = {
        client
            .put_app(
                "fifty.yaml",
                &greeter_fleet("fifty", "loss", COMPONENTS, REPLICAS),
            )
            .await?;
        client.deploy_app("fifty", Some("loss")).await?
    };
    wait_status(&client, AppState::Deployed, changed.generation).await;
    let mut recoveries = Samples::default();
    for _ in 0..KILLS {
        let mut per_host = BTreeMap::new();
        for h in &hosts {
            per_host.insert(
                h.id().to_string(),
                running(&client, &[h.id().to_string()]).await,
            );
        }
        let victim = per_host
            .iter()
            .max_by_key(|(_, n)| **n)
            .map(|(h, _)| h.clone())
            .expect("hosts");
        let index = hosts.iter().position(|h| h.id() == victim).expect("victim");
        let mut host = hosts.remove(index);
        let survivors: Vec<String> = hosts.iter().map(|h| h.id().to_string()).collect();
        let lost = per_host[&victim];
        host.kill();
        let killed = Instant::now();
        let deadline = killed + Duration::from_secs(60);
        while running(&client, &survivors).await < COMPONENTS as u32 * REPLICAS {
            assert!(
                Instant::now() < deadline,
                "replicas not replaced within 60s"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let took = killed.elapsed();
        println!(
            "  SIGKILL of a host with {lost} replicas: all running again after {}",
            fmt(took)
        );
        recoveries.push(took);
        // A fresh host joins for the next round.
        hosts.push(HostProcess::start(&nats.url(), LATTICE, &[("tier", "spare")], &hb).await);
    }
    report(
        "host SIGKILL -> all 100 replicas running (1s heartbeats)",
        &recoveries,
    );
    println!(
        "  p50 in heartbeat intervals: {:.2}",
        recoveries.median().as_secs_f64() / 1.0
    );
    Ok(())
}
