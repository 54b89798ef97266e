//! Deployment managers restarting and running side by side: state lives in KV, one leader
//! acts, and nothing is placed twice.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use trellis_lattice::app::AppState;
use trellis_lattice::event::Event;
use trellis_lattice::LatticeClient;
use trellis_tests::deploy::{wait_for_app, write_manifest};
use trellis_tests::{
    component_ref, init_logging, Cli, EventLog, HostProcess, ManagerProcess, NatsServer,
};

/// An app of `components` greeter components with `instances` replicas each.
fn many(dir: &Path, name: &str, version: &str, components: usize, instances: u32) -> String {
    many_of(
        &component_ref("greeter"),
        dir,
        name,
        version,
        components,
        instances,
    )
}

fn many_of(
    greeter: &str,
    dir: &Path,
    name: &str,
    version: &str,
    components: usize,
    instances: u32,
) -> String {
    let mut yaml = format!(
        "apiVersion: core.oam.dev/v1beta1\nkind: Application\nmetadata:\n  name: {name}\n  annotations:\n    version: {version}\nspec:\n  components:\n"
    );
    for i in 0..components {
        yaml.push_str(&format!(
            "    - name: c{i}\n      type: component\n      properties:\n        image: {greeter}\n      traits:\n        - type: spreadscaler\n          properties:\n            instances: {instances}\n"
        ));
    }
    write_manifest(dir, &format!("{name}-{version}.yaml"), &yaml)
        .display()
        .to_string()
}

/// Replicas per component id (of `app`) per host.
async fn placement(client: &LatticeClient, app: &str) -> BTreeMap<String, BTreeMap<String, u32>> {
    let mut out: BTreeMap<String, BTreeMap<String, u32>> = BTreeMap::new();
    for inv in client.inventories().await.expect("inventories") {
        for c in &inv.components {
            if c.id.starts_with(&format!("{app}-")) {
                out.entry(c.id.clone())
                    .or_default()
                    .insert(inv.host_id.clone(), c.replicas);
            }
        }
    }
    out
}

/// Every component has exactly `instances` replicas, one per host on `instances` hosts.
fn assert_exact(
    placed: &BTreeMap<String, BTreeMap<String, u32>>,
    components: usize,
    instances: u32,
) {
    assert_eq!(placed.len(), components, "{placed:#?}");
    for (id, hosts) in placed {
        assert_eq!(hosts.values().sum::<u32>(), instances, "{id}: {hosts:?}");
        assert!(hosts.values().all(|n| *n == 1), "{id}: {hosts:?}");
    }
}

async fn three_hosts(nats: &NatsServer, lattice: &str) -> Vec<HostProcess> {
    let mut hosts = Vec::new();
    for tier in ["cloud", "gateway", "edge"] {
        hosts.push(
            HostProcess::start(
                &nats.url(),
                lattice,
                &[("tier", tier)],
                &["--heartbeat-interval", "1s"],
            )
            .await,
        );
    }
    hosts
}

#[tokio::test]
async fn a_manager_killed_mid_reconcile_is_resumed_from_kv_without_loss_or_duplicates() {
    init_logging();
    let nats = NatsServer::start().await;
    let lattice = "restart";
    let _hosts = three_hosts(&nats, lattice).await;
    let mut first = ManagerProcess::start(&nats.url(), lattice, &[]).await;
    let client = nats.client(lattice).await;
    let events = EventLog::start(&client).await;
    let dir = tempfile::tempdir().unwrap();
    // Every start fetches the image; the server answers the first two and holds every later
    // fetch until released, so the kill below lands mid-reconcile however fast the machine is.
    let bytes = std::fs::read(trellis_tests::component("greeter")).expect("greeter.wasm");
    let registry = trellis_tests::slow_files::SlowFileServer::gated(bytes, Duration::ZERO, 2).await;
    let file = many_of(registry.url(), dir.path(), "big", "v1", 30, 2);
    let cli = Cli::new(&nats.url(), lattice);
    cli.run(&["app", "deploy", &file]).await.ok();

    // Kill the manager as soon as it placed something, long before it is done.
    events
        .wait_for(
            "a first replica",
            Duration::from_secs(30),
            |e| matches!(e, Event::ComponentScaled(c) if c.replicas > 0),
        )
        .await;
    first.kill();
    let placed_by_first = placement(&client, "big").await;
    let so_far: u32 = placed_by_first.values().flat_map(|h| h.values()).sum();
    eprintln!("the first manager placed {so_far} of 60 replicas");
    assert!(
        so_far < 60,
        "the first manager finished before it was killed"
    );

    // The starts the first manager asked for complete now, under the second one's eyes.
    registry.release();
    // A new manager takes over the stale lease and resumes from what KV and the lattice say.
    let _second = ManagerProcess::start(&nats.url(), lattice, &[]).await;
    let st = wait_for_app(&client, "big", AppState::Deployed, Duration::from_secs(60)).await;
    assert_eq!(st.version.as_deref(), Some("v1"));
    assert_exact(&placement(&client, "big").await, 30, 2);

    let history = client.app_history("big").await.expect("history");
    assert_eq!(history.versions.len(), 1);
    assert_eq!(history.deployments.len(), 1, "{history:#?}");
    // Nothing placed after the status said deployed: the lattice stays as it is.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_exact(&placement(&client, "big").await, 30, 2);
}

#[tokio::test]
async fn two_managers_at_once_place_exactly_once_and_fail_over() {
    init_logging();
    let nats = NatsServer::start().await;
    let lattice = "pair";
    let _hosts = three_hosts(&nats, lattice).await;
    let mut a = ManagerProcess::start(&nats.url(), lattice, &[]).await;
    let mut b = ManagerProcess::start(&nats.url(), lattice, &[]).await;
    let client = nats.client(lattice).await;
    let events = EventLog::start(&client).await;
    let dir = tempfile::tempdir().unwrap();
    let cli = Cli::new(&nats.url(), lattice);

    let v1 = many(dir.path(), "pair", "v1", 10, 3);
    cli.run(&["app", "deploy", &v1, "--wait"]).await.ok();
    assert_exact(&placement(&client, "pair").await, 10, 3);
    // Exactly 30 starts were asked for: no replica was placed twice and then taken back.
    let starts = events
        .typed()
        .iter()
        .filter(|e| matches!(e, Event::ComponentScaled(c) if c.replicas > 0))
        .count();
    assert_eq!(starts, 30);
    let stops = events
        .typed()
        .iter()
        .filter(|e| matches!(e, Event::ComponentScaled(c) if c.replicas == 0))
        .count();
    assert_eq!(stops, 0);

    // Kill whichever leads; the other takes over and applies the next version.
    let leader_log = |m: &ManagerProcess| m.log().contains("became the leader");
    let (leader, follower) = if leader_log(&a) {
        (&mut a, &b)
    } else {
        (&mut b, &a)
    };
    assert!(!leader_log(follower), "both managers led at once");
    leader.kill();
    let v2 = many(dir.path(), "pair", "v2", 10, 2);
    cli.run(&["app", "deploy", &v2, "--wait", "--timeout", "60s"])
        .await
        .ok();
    assert!(follower.log().contains("took over a stale leader lease"));
    assert_exact(&placement(&client, "pair").await, 10, 2);
    let st = client.app_status("pair").await.expect("status");
    assert_eq!(st.version.as_deref(), Some("v2"));
}

#[tokio::test]
async fn a_stopped_manager_hands_over_at_once() {
    init_logging();
    let nats = NatsServer::start().await;
    let lattice = "handover";
    let _host =
        HostProcess::start(&nats.url(), lattice, &[], &["--heartbeat-interval", "1s"]).await;
    // A lease that goes stale only after 5 minutes: the follower below can lead within the
    // test's deadlines only if the stopped leader handed the lease over.
    let slow_lease = ["--lease-stale", "5m"];
    let a = ManagerProcess::start(&nats.url(), lattice, &slow_lease).await;
    let b = ManagerProcess::start(&nats.url(), lattice, &slow_lease).await;
    let client = nats.client(lattice).await;
    let dir = tempfile::tempdir().unwrap();
    let cli = Cli::new(&nats.url(), lattice);
    cli.run(&[
        "app",
        "deploy",
        &many(dir.path(), "h", "v1", 1, 1),
        "--wait",
    ])
    .await
    .ok();
    let (a_led, b_led) = (
        a.log().contains("became the leader"),
        b.log().contains("became the leader"),
    );
    assert!(a_led ^ b_led, "exactly one leader");
    let (mut leader, follower) = if a_led { (a, b) } else { (b, a) };
    assert!(leader.terminate().await.success());
    assert!(
        leader.log().contains("released the leader lease"),
        "{}",
        leader.log()
    );
    // The released lease is taken without waiting for it to go stale (5 minutes).
    cli.run(&[
        "app",
        "deploy",
        &many(dir.path(), "h", "v2", 1, 2),
        "--wait",
        "--timeout",
        "60s",
    ])
    .await
    .ok();
    assert!(follower.log().contains("became the leader"));
    wait_for_app(&client, "h", AppState::Deployed, Duration::from_secs(60)).await;
}

#[tokio::test]
async fn a_new_leader_acts_once_it_has_heard_every_live_host() {
    init_logging();
    let nats = NatsServer::start().await;
    let lattice = "heard";
    // Heartbeats a minute apart: a leader that waited to hear every host from heartbeats
    // would listen its whole warm-up; one whose snapshot holds every host the presence
    // stream counts need not.
    let mut hosts = Vec::new();
    for _ in 0..3 {
        let slow = ["--heartbeat-interval", "60s"];
        hosts.push(HostProcess::start(&nats.url(), lattice, &[], &slow).await);
    }
    let mut first = ManagerProcess::start(&nats.url(), lattice, &[]).await;
    let client = nats.client(lattice).await;
    let dir = tempfile::tempdir().unwrap();
    let cli = Cli::new(&nats.url(), lattice);
    let deploy = |version: &'static str, instances| {
        let manifest = many(dir.path(), "heard", version, 2, instances);
        let cli = &cli;
        async move {
            cli.run(&["app", "deploy", &manifest, "--wait", "--timeout", "60s"])
                .await
                .ok();
        }
    };
    deploy("v1", 3).await;
    assert!(
        first.log().contains("every live host heard: acting"),
        "{}",
        first.log()
    );
    assert_exact(&placement(&client, "heard").await, 2, 3);

    // A host killed keeps its place in the presence stream until it ages out: the next leader
    // hears fewer hosts than are counted and does not skip its warm-up.
    hosts[2].kill();
    assert!(first.terminate().await.success());
    let second = ManagerProcess::start(&nats.url(), lattice, &[]).await;
    deploy("v2", 2).await;
    wait_for_app(
        &client,
        "heard",
        AppState::Deployed,
        Duration::from_secs(60),
    )
    .await;
    assert!(
        second.log().contains("became the leader"),
        "{}",
        second.log()
    );
    assert!(
        !second.log().contains("every live host heard"),
        "{}",
        second.log()
    );
}
