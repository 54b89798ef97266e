//! Faults under a running lattice: NATS itself killed and restarted (same port, same
//! JetStream store) under hosts and a manager with an app deployed. Afterwards the links,
//! config and apps are as they were, the app is still deployed, and no replica is doubled.
//! (A manager killed mid-deploy is in `deploy_managers.rs`; hosts killed, in `deploy.rs`.)

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use trellis_lattice::app::AppState;
use trellis_lattice::LatticeClient;
use trellis_tests::deploy::wait_for_app;
use trellis_tests::{init_logging, wait_for, Cli, HostProcess, ManagerProcess, NatsServer};

/// Replicas per component id per host, and providers per host.
async fn placement(client: &LatticeClient) -> BTreeMap<String, BTreeMap<String, u32>> {
    let mut out: BTreeMap<String, BTreeMap<String, u32>> = BTreeMap::new();
    for inv in client.inventories().await.expect("inventories") {
        for c in &inv.components {
            out.entry(c.id.clone())
                .or_default()
                .insert(inv.host_id.clone(), c.replicas);
        }
        for p in &inv.providers {
            out.entry(p.id.clone())
                .or_default()
                .insert(inv.host_id.clone(), 1);
        }
    }
    out
}

#[tokio::test]
async fn nats_restarted_under_a_deployed_app_loses_and_doubles_nothing() {
    init_logging();
    let mut nats = NatsServer::start().await;
    let lattice = "faults-nats";
    let flags = ["--heartbeat-interval", "1s"];
    let _a = HostProcess::start(&nats.url(), lattice, &[], &flags).await;
    let _b = HostProcess::start(&nats.url(), lattice, &[], &flags).await;
    let _manager = ManagerProcess::start(&nats.url(), lattice, &[]).await;
    let cli = Cli::new(&nats.url(), lattice);
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/apps/counter.yaml");
    cli.run(&[
        "app",
        "deploy",
        example.to_str().expect("path"),
        "--wait",
        "--timeout",
        "2m",
    ])
    .await
    .ok();
    let client = nats.client(lattice).await;
    let before = (
        client.links().await.expect("links"),
        client.named_configs().await.expect("configs"),
        client.apps().await.expect("apps"),
        placement(&client).await,
    );
    let counted = cli
        .run(&["call", "counter-counter", "increment", "\"n\""])
        .await
        .ok();
    assert_eq!(counted.stdout.trim(), "1");

    nats.restart().await;

    let client = nats.client(lattice).await;
    wait_for("both hosts back", Duration::from_secs(60), || async {
        (client.hosts().await.ok()?.len() == 2).then_some(())
    })
    .await;
    wait_for_app(
        &client,
        "counter",
        AppState::Deployed,
        Duration::from_secs(60),
    )
    .await;
    // Give the manager a few passes: nothing it does may change what runs.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = (
        client.links().await.expect("links"),
        client.named_configs().await.expect("configs"),
        client.apps().await.expect("apps"),
        placement(&client).await,
    );
    assert_eq!(after.0, before.0, "links");
    assert_eq!(after.1, before.1, "config");
    assert_eq!(after.2, before.2, "apps");
    assert_eq!(after.3, before.3, "placements, none doubled");
    let counted = Cli::new(&nats.url(), lattice)
        .run(&["call", "counter-counter", "increment", "\"n\""])
        .await
        .ok();
    assert_eq!(
        counted.stdout.trim(),
        "2",
        "the count survived in the restarted JetStream"
    );
}
