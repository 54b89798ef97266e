//! The deployment manager changes and removes only the config and links it created: the
//! README's walkthrough, in its order, leaves what the user put by hand alone, and a manifest
//! that would take over a user's config is refused at deploy.

use std::path::Path;
use std::time::Duration;

use trellis_tests::{component_ref, init_logging, Cli, HostProcess, ManagerProcess, NatsServer};

fn example(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/apps")
        .join(name)
        .display()
        .to_string()
}

async fn bucket_of(cli: &Cli, config: &str) -> serde_json::Value {
    cli.run(&["config", "get", config, "-o", "json"])
        .await
        .ok()
        .json()
}

#[tokio::test]
async fn the_walkthrough_order_leaves_hand_made_config_alone() {
    init_logging();
    let nats = NatsServer::start().await;
    let lattice = "own-walk";
    let _host = HostProcess::start(&nats.url(), lattice, &[], &[]).await;
    let _manager = ManagerProcess::start(&nats.url(), lattice, &[]).await;
    let cli = Cli::new(&nats.url(), lattice);

    // As the README's walkthrough does it, by hand first.
    cli.run(&["config", "put", "counter-bucket", "bucket=counters"])
        .await
        .ok();
    cli.run(&[
        "provider",
        "start",
        "builtin://keyvalue-nats",
        "--id",
        "kv-nats",
    ])
    .await
    .ok();
    cli.run(&[
        "component",
        "start",
        &component_ref("counter"),
        "--id",
        "counter",
    ])
    .await
    .ok();
    cli.run(&[
        "link",
        "put",
        "counter",
        "kv-nats",
        "wasi:keyvalue",
        "--interface",
        "atomics",
        "--interface",
        "store",
        "--target-config",
        "counter-bucket",
    ])
    .await
    .ok();
    let one = cli
        .run(&["call", "counter", "increment", "\"hits\""])
        .await
        .ok();
    assert_eq!(one.stdout.trim(), "1");
    let hand_made = bucket_of(&cli, "counter-bucket").await;

    // Then the app, deployed and undeployed: the hand-made config and link are untouched.
    cli.run(&[
        "app",
        "deploy",
        &example("counter.yaml"),
        "--wait",
        "--timeout",
        "2m",
    ])
    .await
    .ok();
    assert_eq!(bucket_of(&cli, "counter-bucket").await, hand_made);
    cli.run(&["app", "undeploy", "counter", "--wait", "--timeout", "2m"])
        .await
        .ok();
    assert_eq!(bucket_of(&cli, "counter-bucket").await, hand_made);
    let links = cli.run(&["get", "links", "-o", "json"]).await.ok().json();
    assert!(
        links
            .as_array()
            .expect("links")
            .iter()
            .any(|l| l["source_id"] == "counter"),
        "the hand-made link is still there: {links}"
    );
    let two = cli
        .run(&["call", "counter", "increment", "\"hits\""])
        .await
        .ok();
    assert_eq!(
        two.stdout.trim(),
        "2",
        "the hand-started counter still counts"
    );
}

#[tokio::test]
async fn a_manifest_that_would_take_over_a_users_config_is_refused_at_deploy() {
    init_logging();
    let nats = NatsServer::start().await;
    let lattice = "own-refuse";
    let _host = HostProcess::start(&nats.url(), lattice, &[], &[]).await;
    let _manager = ManagerProcess::start(&nats.url(), lattice, &[]).await;
    let cli = Cli::new(&nats.url(), lattice);
    cli.run(&["config", "put", "counter-app-bucket", "bucket=mine"])
        .await
        .ok();
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        cli.run(&[
            "app",
            "deploy",
            &example("counter.yaml"),
            "--wait",
            "--timeout",
            "1m",
        ]),
    )
    .await
    .expect("deploy answers");
    assert_eq!(out.code, Some(5), "a conflict: {out:?}");
    assert!(
        out.stderr.contains(
            "config counter-app-bucket exists and was not created by application counter"
        ),
        "{}",
        out.stderr
    );
    assert_eq!(
        bucket_of(&cli, "counter-app-bucket").await["bucket"],
        "mine"
    );
    // Deleted by its user, the name is free for the app.
    cli.run(&["config", "del", "counter-app-bucket"]).await.ok();
    cli.run(&["app", "deploy", "counter", "--wait", "--timeout", "2m"])
        .await
        .ok();
    assert_eq!(
        bucket_of(&cli, "counter-app-bucket").await["bucket"],
        "counter"
    );
    // A second app may not take what the first owns.
    let tally = std::fs::read_to_string(example("counter.yaml"))
        .expect("counter.yaml")
        .replace("name: counter\n  annotations", "name: tally\n  annotations")
        .replace(
            "../../target",
            &format!("{}/../target", env!("CARGO_MANIFEST_DIR")),
        );
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("tally.yaml");
    std::fs::write(&file, tally).expect("write");
    let out = cli
        .run(&["app", "deploy", file.to_str().expect("path")])
        .await;
    assert_eq!(out.code, Some(5), "{out:?}");
    assert!(
        out.stderr.contains("belongs to application counter"),
        "{}",
        out.stderr
    );
}
