//! The deployment manager placing apps: spread weights, daemonscalers following hosts and
//! labels, host loss.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use trellis_lattice::app::AppState;
use trellis_tests::deploy::{provider_hosts, replicas, wait_for_app, write_manifest};
use trellis_tests::{
    bin, component_ref, init_logging, wait_for, Cli, HostProcess, ManagerProcess, NatsServer,
};

fn counts(pairs: &[(&str, u32)]) -> BTreeMap<String, u32> {
    pairs.iter().map(|(h, n)| (h.to_string(), *n)).collect()
}

#[tokio::test]
async fn spread_weights_land_as_the_arithmetic_says_on_different_hosts() {
    init_logging();
    let nats = NatsServer::start().await;
    let lattice = "weights";
    let cloud = HostProcess::start(&nats.url(), lattice, &[("tier", "cloud")], &[]).await;
    let gateway = HostProcess::start(&nats.url(), lattice, &[("tier", "gateway")], &[]).await;
    let edge = HostProcess::start(&nats.url(), lattice, &[("tier", "edge")], &[]).await;
    let _manager = ManagerProcess::start(&nats.url(), lattice, &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let greeter = component_ref("greeter");
    let file = write_manifest(
        dir.path(),
        "weights.yaml",
        &format!(
            r#"
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: weights
  annotations:
    version: v1
spec:
  components:
    # 6 replicas by weight 50/30/20: 3 + 1.8 + 1.2, the leftover to the largest remainder.
    - name: weighted
      type: component
      properties:
        image: {greeter}
      traits:
        - type: spreadscaler
          properties:
            instances: 6
            spread:
              - name: cloud
                requirements: {{ tier: cloud }}
                weight: 50
              - name: gateway
                requirements: {{ tier: gateway }}
                weight: 30
              - name: edge
                requirements: {{ tier: edge }}
                weight: 20
    # 3 replicas without spreads: one per host, not all on the first.
    - name: even
      type: component
      properties:
        image: {greeter}
      traits:
        - type: spreadscaler
          properties:
            instances: 3
"#
        ),
    );
    let cli = Cli::new(&nats.url(), lattice);
    let out = cli
        .run(&["app", "deploy", file.to_str().unwrap(), "--wait"])
        .await
        .ok();
    assert!(
        out.stdout.contains("weights version v1 deployed"),
        "{out:?}"
    );

    let client = nats.client(lattice).await;
    assert_eq!(
        replicas(&client, "weights-weighted").await,
        counts(&[(cloud.id(), 3), (gateway.id(), 2), (edge.id(), 1)])
    );
    assert_eq!(
        replicas(&client, "weights-even").await,
        counts(&[(cloud.id(), 1), (gateway.id(), 1), (edge.id(), 1)])
    );

    let st = cli
        .run(&["app", "status", "weights", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(st["name"], "weights");
    assert_eq!(st["version"], "v1");
    assert_eq!(st["status"], "deployed");
    let scalers = st["scalers"].as_array().expect("scalers");
    let weighted = scalers
        .iter()
        .find(|s| s["name"] == "weights-weighted")
        .expect("the weighted scaler");
    assert_eq!(weighted["kind"], "spreadscaler");
    assert_eq!(weighted["state"], "deployed");
    assert_eq!(
        (weighted["desired"].as_u64(), weighted["actual"].as_u64()),
        (Some(6), Some(6))
    );
    assert_eq!(weighted["placements"][cloud.id()], 3);

    let table = cli.run(&["app", "status", "weights"]).await.ok().stdout;
    assert!(
        table.contains("spreadscaler") && table.contains("weights-even"),
        "{table}"
    );
    let greeting = client
        .call("weights-even", "greet", &[serde_json::json!("lattice")])
        .await
        .expect("calling the deployed component");
    assert_eq!(greeting, "Hello, lattice!");
}

#[tokio::test]
async fn daemonscalers_follow_joining_hosts_and_label_changes() {
    init_logging();
    let nats = NatsServer::start().await;
    let lattice = "daemons";
    // Heartbeats and the manager's full pass far longer than any deadline below: a joining
    // host and a label change are acted upon only if the manager reacts to their events.
    let hb = ["--heartbeat-interval", "10m"];
    let edge1 = HostProcess::start(&nats.url(), lattice, &[("tier", "edge")], &hb).await;
    let cloud = HostProcess::start(&nats.url(), lattice, &[("tier", "cloud")], &hb).await;
    let _manager = ManagerProcess::start(&nats.url(), lattice, &["--full-pass", "10m"]).await;
    let dir = tempfile::tempdir().unwrap();
    let provider = format!("file://{}", bin("trellis-provider-keyvalue-nats").display());
    let greeter = component_ref("greeter");
    let file = write_manifest(
        dir.path(),
        "daemons.yaml",
        &format!(
            r#"
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: daemons
spec:
  components:
    - name: kv
      type: capability
      properties:
        image: {provider}
        id: edge-kv
      traits:
        - type: daemonscaler
          properties:
            spread:
              - name: edge
                requirements: {{ tier: edge }}
    - name: sensor
      type: component
      properties:
        image: {greeter}
      traits:
        - type: daemonscaler
          properties:
            instances: 2
            spread:
              - name: edge
                requirements: {{ tier: edge }}
"#
        ),
    );
    let cli = Cli::new(&nats.url(), lattice);
    cli.run(&["app", "deploy", file.to_str().unwrap(), "--wait"])
        .await
        .ok();
    let client = nats.client(lattice).await;
    assert_eq!(provider_hosts(&client, "edge-kv").await, vec![edge1.id()]);
    assert_eq!(
        replicas(&client, "daemons-sensor").await,
        counts(&[(edge1.id(), 2)])
    );

    // A matching host joins later.
    let edge2 = HostProcess::start(&nats.url(), lattice, &[("tier", "edge")], &hb).await;
    let mut both = vec![edge1.id().to_string(), edge2.id().to_string()];
    both.sort();
    wait_for(
        "the daemons on the joining host",
        Duration::from_secs(60),
        || {
            let client = &client;
            let both = both.clone();
            let edge2 = edge2.id().to_string();
            async move {
                let on_edge2 = replicas(client, "daemons-sensor").await.get(&edge2) == Some(&2);
                (on_edge2 && provider_hosts(client, "edge-kv").await == both).then_some(())
            }
        },
    )
    .await;

    // A host whose labels change to match gets them, without waiting for a heartbeat.
    cli.run(&["label", "put", cloud.id(), "tier=edge"])
        .await
        .ok();
    let changed = Instant::now();
    wait_for(
        "the daemons on the relabelled host",
        Duration::from_secs(60),
        || {
            let client = &client;
            let cloud = cloud.id().to_string();
            async move {
                let inv = client.inventory(&cloud).await.ok()?;
                let component = inv.component("daemons-sensor").map(|c| c.replicas) == Some(2);
                let provider = inv.providers.iter().any(|p| p.id == "edge-kv");
                (component && provider).then_some(())
            }
        },
    )
    .await;
    eprintln!(
        "relabelled host running the daemons after {:?}",
        changed.elapsed()
    );

    // And loses them when they stop matching.
    cli.run(&["label", "del", cloud.id(), "tier"]).await.ok();
    wait_for(
        "the daemons to leave the relabelled host",
        Duration::from_secs(60),
        || {
            let client = &client;
            let cloud = cloud.id().to_string();
            async move {
                let inv = client.inventory(&cloud).await.ok()?;
                (inv.components.is_empty() && inv.providers.is_empty()).then_some(())
            }
        },
    )
    .await;
    wait_for_app(
        &client,
        "daemons",
        AppState::Deployed,
        Duration::from_secs(60),
    )
    .await;
    // Stop the provider processes before the hosts are killed with the test.
    cli.run(&["app", "undeploy", "daemons", "--wait"])
        .await
        .ok();
    assert!(provider_hosts(&client, "edge-kv").await.is_empty());
}

#[tokio::test]
async fn replicas_of_a_killed_host_run_elsewhere_once_it_misses_its_heartbeats() {
    init_logging();
    let nats = NatsServer::start().await;
    let lattice = "hostloss";
    // How many missed heartbeats declare a host gone is tested with a paused clock in the
    // manager's view; here only what happens then, with a deadline that only stops a hang.
    let hb = ["--heartbeat-interval", "1s"];
    let mut hosts = Vec::new();
    for tier in ["a", "b", "c"] {
        hosts.push(HostProcess::start(&nats.url(), lattice, &[("tier", tier)], &hb).await);
    }
    let _manager = ManagerProcess::start(&nats.url(), lattice, &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let greeter = component_ref("greeter");
    let file = write_manifest(
        dir.path(),
        "loss.yaml",
        &format!(
            r#"
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: loss
spec:
  components:
    - name: greeter
      type: component
      properties:
        image: {greeter}
      traits:
        - type: spreadscaler
          properties:
            instances: 6
"#
        ),
    );
    let cli = Cli::new(&nats.url(), lattice);
    cli.run(&["app", "deploy", file.to_str().unwrap(), "--wait"])
        .await
        .ok();
    let client = nats.client(lattice).await;
    let before = replicas(&client, "loss-greeter").await;
    assert_eq!(before.values().copied().collect::<Vec<_>>(), vec![2, 2, 2]);

    let mut victim = hosts.remove(1);
    let victim_id = victim.id().to_string();
    victim.kill();
    let killed = Instant::now();
    let expected = counts(&[(hosts[0].id(), 3), (hosts[1].id(), 3)]);
    wait_for(
        "all 6 replicas on the two remaining hosts",
        Duration::from_secs(60),
        || {
            let client = &client;
            let expected = expected.clone();
            async move {
                // Ask the survivors directly: the killed host cannot answer.
                let mut now = BTreeMap::new();
                for h in expected.keys() {
                    let inv = client.inventory(h).await.ok()?;
                    if let Some(c) = inv.component("loss-greeter") {
                        now.insert(h.clone(), c.replicas);
                    }
                }
                (now == expected).then_some(())
            }
        },
    )
    .await;
    eprintln!("replicas replaced {:?} after SIGKILL", killed.elapsed());
    let st = wait_for_app(&client, "loss", AppState::Deployed, Duration::from_secs(60)).await;
    let scaler = &st.scalers[0];
    assert_eq!((scaler.desired, scaler.actual), (6, 6));
    assert!(!scaler.placements.contains_key(&victim_id), "{st:#?}");
}
