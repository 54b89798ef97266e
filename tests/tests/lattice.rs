//! Hosts joining lattices, labels, host loss and NATS restarts.

use std::time::Duration;

use trellis_lattice::event::Event;
use trellis_tests::{init_logging, Cli, EventLog, HostProcess, InProcessHost, NatsServer};

#[tokio::test]
async fn hosts_show_with_labels_and_lattices_do_not_see_each_other() {
    init_logging();
    let nats = NatsServer::start().await;
    let cloud = HostProcess::start(&nats.url(), "alpha", &[("tier", "cloud")], &[]).await;
    let gateway = HostProcess::start(&nats.url(), "alpha", &[("tier", "gateway")], &[]).await;
    let edge = InProcessHost::start(&nats.url(), "alpha", &[("tier", "edge")]).await;
    let other = HostProcess::start(&nats.url(), "beta", &[("tier", "cloud")], &[]).await;

    let alpha = Cli::new(&nats.url(), "alpha");
    let hosts = alpha.run(&["get", "hosts", "-o", "json"]).await.ok().json();
    let hosts = hosts.as_array().expect("an array of hosts");
    assert_eq!(hosts.len(), 3, "{hosts:#?}");
    for (id, tier) in [
        (cloud.id().to_string(), "cloud"),
        (gateway.id().to_string(), "gateway"),
        (edge.id(), "edge"),
    ] {
        let h = hosts
            .iter()
            .find(|h| h["id"] == id.as_str())
            .unwrap_or_else(|| panic!("host {id} missing"));
        assert_eq!(h["labels"]["tier"], tier);
        assert_eq!(h["labels"]["trellis.os"], std::env::consts::OS);
        assert!(h["friendly_name"].as_str().is_some_and(|n| !n.is_empty()));
        assert!(h["version"].is_string() && h["uptime_seconds"].is_u64());
    }
    assert!(hosts.iter().all(|h| h["id"] != other.id()));

    let table = alpha.run(&["get", "hosts"]).await.ok().stdout;
    assert!(
        table.contains("tier=gateway") && table.contains(gateway.id()),
        "{table}"
    );

    let beta = Cli::new(&nats.url(), "beta")
        .run(&["get", "hosts", "-o", "json"])
        .await
        .ok()
        .json();
    let beta = beta.as_array().expect("array");
    assert_eq!(beta.len(), 1);
    assert_eq!(beta[0]["id"], other.id());

    let empty = Cli::new(&nats.url(), "gamma")
        .run(&["get", "hosts", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(empty, serde_json::json!([]));
    edge.stop().await;
}

#[tokio::test]
async fn label_changes_reach_a_watcher_at_once() {
    init_logging();
    let nats = NatsServer::start().await;
    // A heartbeat far longer than the deadlines below proves the change travels as its own
    // event, not with a heartbeat.
    let host =
        HostProcess::start(&nats.url(), "labels", &[], &["--heartbeat-interval", "10m"]).await;
    let client = nats.client("labels").await;
    let events = EventLog::start(&client).await;
    let cli = Cli::new(&nats.url(), "labels");

    cli.run(&["label", "put", host.id(), "zone=north"])
        .await
        .ok();
    events
        .wait_for("labels_changed with zone=north", Duration::from_secs(60), |e| {
            matches!(e, Event::LabelsChanged(l) if l.labels.get("zone").map(String::as_str) == Some("north"))
        })
        .await;
    let inv = client.inventory(host.id()).await.expect("inventory");
    assert_eq!(inv.labels["zone"], "north");

    cli.run(&["label", "del", host.id(), "zone"]).await.ok();
    events
        .wait_for(
            "labels_changed without zone",
            Duration::from_secs(60),
            |e| matches!(e, Event::LabelsChanged(l) if !l.labels.contains_key("zone")),
        )
        .await;

    let err = cli
        .run(&["label", "put", host.id(), "trellis.arch=riscv"])
        .await
        .err();
    assert!(err.contains("built in"), "{err}");
    let err = cli
        .run(&["label", "put", host.id(), "no-equals-sign"])
        .await
        .err();
    assert!(err.contains("KEY=VALUE"), "{err}");
    let err = cli
        .run(&["label", "del", host.id(), "never-set"])
        .await
        .err();
    assert!(err.contains("no label"), "{err}");
}

#[tokio::test]
async fn killed_host_disappears_and_terminated_host_says_goodbye() {
    init_logging();
    let nats = NatsServer::start().await;
    let args = ["--heartbeat-interval", "300ms"];
    let mut doomed = HostProcess::start(&nats.url(), "loss", &[], &args).await;
    let mut polite = HostProcess::start(&nats.url(), "loss", &[], &args).await;
    let client = nats.client("loss").await;
    let events = EventLog::start(&client).await;
    let doomed_id = doomed.id().to_string();
    events
        .wait_for(
            "a heartbeat from the doomed host",
            Duration::from_secs(60),
            |e| matches!(e, Event::HostHeartbeat(inv) if inv.host_id == doomed_id),
        )
        .await;

    doomed.kill();
    let seen_at_kill = events.all().len();
    let hosts = client.hosts().await.expect("hosts");
    assert!(
        hosts.iter().all(|h| h.id != doomed_id),
        "a killed host still answers"
    );
    assert!(hosts.iter().any(|h| h.id == polite.id()));
    // Three heartbeats of the surviving host later (ordering, not wall time), nothing more
    // from the killed one.
    let polite_id = polite.id().to_string();
    events
        .wait_for_count(
            "three heartbeats of the surviving host after the kill",
            Duration::from_secs(60),
            seen_at_kill,
            3,
            |e| matches!(e, Event::HostHeartbeat(inv) if inv.host_id == polite_id),
        )
        .await;
    let after: Vec<_> = events.all()[seen_at_kill..]
        .iter()
        .filter(|e| e.source == doomed_id)
        .cloned()
        .collect();
    assert!(after.is_empty(), "events from a killed host: {after:?}");
    let cli = Cli::new(&nats.url(), "loss");
    let listed = cli.run(&["get", "hosts", "-o", "json"]).await.ok().json();
    assert!(listed.as_array().is_some_and(|a| a.len() == 1));

    let status = polite.terminate().await;
    assert!(status.success(), "SIGTERM exit status {status}");
    events
        .wait_for(
            "host_stopped",
            Duration::from_secs(60),
            |e| matches!(e, Event::HostStopped(h) if h.host_id == polite_id),
        )
        .await;
}

#[tokio::test]
async fn host_reconnects_and_reappears_after_nats_restarts() {
    init_logging();
    let mut nats = NatsServer::start().await;
    let host =
        HostProcess::start(&nats.url(), "restart", &[], &["--heartbeat-interval", "1s"]).await;
    let cli = Cli::new(&nats.url(), "restart");
    let greeter = trellis_tests::component_ref("greeter");
    cli.run(&[
        "component",
        "start",
        &greeter,
        "--id",
        "greeter",
        "--host",
        host.id(),
    ])
    .await
    .ok();

    nats.restart().await;
    let client = nats.client("restart").await;
    let events = EventLog::start(&client).await;
    let id = host.id().to_string();
    trellis_tests::wait_for("the host to answer again", Duration::from_secs(20), || {
        let client = &client;
        let id = id.clone();
        async move {
            let hosts = client.hosts().await.ok()?;
            hosts.iter().any(|h| h.id == id).then_some(())
        }
    })
    .await;
    events
        .wait_for(
            "the host to announce itself again",
            Duration::from_secs(60),
            |e| {
                matches!(e, Event::HostStarted(h) if h.host_id == id && h.reconnected)
                    || matches!(e, Event::HostHeartbeat(inv) if inv.host_id == id)
            },
        )
        .await;
    let out = cli
        .run(&["call", "greeter", "greet", "\"again\""])
        .await
        .ok();
    assert_eq!(out.stdout.trim(), "\"Hello, again!\"");
}
