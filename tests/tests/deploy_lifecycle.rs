//! An app's life through the CLI: invalid manifests refused with nothing stored, versions,
//! upgrade and rollback under load, undeploy and delete.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use trellis_lattice::app::AppState;
use trellis_lattice::link::Link;
use trellis_lattice::LatticeClient;
use trellis_tests::deploy::{replicas, wait_for_app, write_manifest};
use trellis_tests::{
    bin, component_ref, init_logging, Cli, HostProcess, ManagerProcess, NatsServer,
};

/// Calls `greet` in a loop until stopped; counts successes and failures.
fn keep_calling(
    client: Arc<LatticeClient>,
    component: &str,
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<Vec<String>> {
    let component = component.to_string();
    tokio::spawn(async move {
        let mut errors = Vec::new();
        // Bounded: at most 10 minutes of calls.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
        while !stop.load(Ordering::Relaxed) && tokio::time::Instant::now() < deadline {
            match client
                .call(&component, "greet", &[serde_json::json!("load")])
                .await
            {
                Ok(v) if v == "Hello, load!" => {
                    ok.fetch_add(1, Ordering::Relaxed);
                }
                other => {
                    failed.fetch_add(1, Ordering::Relaxed);
                    errors.push(format!("{other:?}"));
                }
            }
        }
        errors
    })
}

/// Waits until `ok` counts at least `n` calls; the deadline only stops a hung test.
async fn calls_reach(ok: &AtomicU64, n: u64) {
    trellis_tests::wait_for("calls to succeed", Duration::from_secs(120), || {
        let done = ok.load(Ordering::Relaxed) >= n;
        async move { done.then_some(()) }
    })
    .await
}

async fn images(client: &LatticeClient, component: &str) -> BTreeMap<String, (String, u32)> {
    client
        .inventories()
        .await
        .unwrap()
        .iter()
        .filter_map(|inv| {
            let c = inv.component(component)?;
            Some((inv.host_id.clone(), (c.image.clone(), c.replicas)))
        })
        .collect()
}

#[tokio::test]
async fn upgrade_and_rollback_under_load_fail_no_call() {
    init_logging();
    let nats = NatsServer::start().await;
    let lattice = "upgrade";
    let _a = HostProcess::start(&nats.url(), lattice, &[], &["--heartbeat-interval", "1s"]).await;
    let _b = HostProcess::start(&nats.url(), lattice, &[], &["--heartbeat-interval", "1s"]).await;
    let _manager = ManagerProcess::start(&nats.url(), lattice, &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let app = |version: &str, image: &str, instances: u32| {
        write_manifest(
            dir.path(),
            &format!("{version}.yaml"),
            &format!(
                "apiVersion: core.oam.dev/v1beta1\nkind: Application\nmetadata:\n  name: live\n  annotations:\n    version: {version}\nspec:\n  components:\n    - name: greeter\n      type: component\n      properties:\n        image: {image}\n      traits:\n        - type: spreadscaler\n          properties:\n            instances: {instances}\n"
            ),
        )
    };
    let rust = component_ref("greeter");
    let python = component_ref("greeter-py");
    let v1 = app("v1", &rust, 2);
    let v2 = app("v2", &python, 3);
    let cli = Cli::new(&nats.url(), lattice);
    cli.run(&["app", "deploy", v1.to_str().unwrap(), "--wait"])
        .await
        .ok();

    let client = Arc::new(nats.client(lattice).await);
    let (stop, ok, failed) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let caller = keep_calling(
        Arc::clone(&client),
        "live-greeter",
        Arc::clone(&stop),
        Arc::clone(&ok),
        Arc::clone(&failed),
    );
    calls_reach(&ok, 20).await;

    cli.run(&["app", "deploy", v2.to_str().unwrap(), "--wait"])
        .await
        .ok();
    let after_upgrade = images(&client, "live-greeter").await;
    assert!(
        after_upgrade.values().all(|(image, _)| *image == python),
        "{after_upgrade:#?}"
    );
    assert_eq!(after_upgrade.values().map(|(_, n)| n).sum::<u32>(), 3);
    let calls_at_upgrade = ok.load(Ordering::Relaxed);

    let out = cli
        .run(&["app", "rollback", "live", "v1", "--wait"])
        .await
        .ok();
    assert!(out.stdout.contains("live version v1 deployed"), "{out:?}");
    let after_rollback = images(&client, "live-greeter").await;
    assert!(
        after_rollback.values().all(|(image, _)| *image == rust),
        "{after_rollback:#?}"
    );
    assert_eq!(after_rollback.values().map(|(_, n)| n).sum::<u32>(), 2);
    // Calls keep succeeding after the rollback.
    calls_reach(&ok, ok.load(Ordering::Relaxed) + 20).await;

    stop.store(true, Ordering::Relaxed);
    let errors = caller.await.unwrap();
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    eprintln!("{ok} calls succeeded, {failed} failed");
    assert_eq!(failed, 0, "failed calls: {errors:#?}");
    assert!(ok > calls_at_upgrade && calls_at_upgrade > 20);

    let history = client.app_history("live").await.unwrap();
    let actions: Vec<(&str, Option<&str>)> = history
        .deployments
        .iter()
        .map(|e| (e.action.as_str(), e.version.as_deref()))
        .collect();
    assert_eq!(
        actions,
        [
            ("deploy", Some("v1")),
            ("deploy", Some("v2")),
            ("rollback", Some("v1"))
        ]
    );
}

/// What the lattice runs and stores, comparable before and after.
#[derive(Debug, PartialEq)]
struct LatticeState {
    components: BTreeMap<(String, String), (String, u32)>,
    providers: BTreeMap<(String, String), String>,
    links: Vec<Link>,
    configs: BTreeMap<String, BTreeMap<String, String>>,
}

async fn lattice_state(client: &LatticeClient) -> LatticeState {
    let mut components = BTreeMap::new();
    let mut providers = BTreeMap::new();
    for inv in client.inventories().await.unwrap() {
        for c in &inv.components {
            components.insert(
                (inv.host_id.clone(), c.id.clone()),
                (c.image.clone(), c.replicas),
            );
        }
        for p in &inv.providers {
            providers.insert((inv.host_id.clone(), p.id.clone()), p.image.clone());
        }
    }
    LatticeState {
        components,
        providers,
        links: client.links().await.unwrap(),
        configs: client.named_configs().await.unwrap(),
    }
}

#[tokio::test]
async fn undeploy_leaves_the_lattice_as_it_was_and_delete_forgets_the_app() {
    init_logging();
    let nats = NatsServer::start().await;
    let lattice = "undeploy";
    let hb = ["--heartbeat-interval", "1s"];
    let edge = HostProcess::start(&nats.url(), lattice, &[("tier", "edge")], &hb).await;
    let _cloud = HostProcess::start(&nats.url(), lattice, &[("tier", "cloud")], &hb).await;
    let _manager = ManagerProcess::start(&nats.url(), lattice, &[]).await;
    let cli = Cli::new(&nats.url(), lattice);
    let greeter = component_ref("greeter");

    // Things the app must not touch: an unmanaged component, and named config the app only
    // references.
    cli.run(&[
        "component",
        "start",
        &greeter,
        "--id",
        "bystander",
        "--host",
        edge.id(),
    ])
    .await
    .ok();
    cli.run(&["config", "put", "shared", "greeting=hi"])
        .await
        .ok();
    let client = nats.client(lattice).await;
    let before = lattice_state(&client).await;

    let provider = format!("file://{}", bin("trellis-provider-keyvalue-nats").display());
    let kv_client = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../wadm-like/validate/tests/components/kv-client.wasm")
        .canonicalize()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = write_manifest(
        dir.path(),
        "full.yaml",
        &format!(
            r#"
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: full
  annotations:
    version: v1
spec:
  components:
    - name: greeter
      type: component
      properties:
        image: {greeter}
        config:
          - name: shared
          - properties: {{ mode: loud }}
      traits:
        - type: spreadscaler
          properties:
            instances: 3
    - name: client
      type: component
      properties:
        image: file://{kv_client}
      traits:
        - type: spreadscaler
          properties:
            instances: 1
        - type: link
          properties:
            target:
              name: kv
              config:
                - name: full-bucket
                  properties: {{ bucket: full }}
            namespace: wasi
            package: keyvalue
            interfaces: [store]
    - name: kv
      type: capability
      properties:
        image: {provider}
      traits:
        - type: daemonscaler
"#,
            kv_client = kv_client.display()
        ),
    );
    cli.run(&["app", "deploy", file.to_str().unwrap(), "--wait"])
        .await
        .ok();
    let during = lattice_state(&client).await;
    assert_eq!(
        replicas(&client, "full-greeter")
            .await
            .values()
            .sum::<u32>(),
        3
    );
    assert_eq!(during.providers.len(), 2, "{during:#?}");
    assert_eq!(during.links.len(), 1);
    assert!(
        during.configs.contains_key("full-bucket") && during.configs.contains_key("full-greeter-1")
    );
    assert!(during
        .components
        .contains_key(&(edge.id().to_string(), "bystander".to_string())));

    let out = cli.run(&["app", "undeploy", "full", "--wait"]).await.ok();
    assert!(out.stdout.contains("undeployed"), "{out:?}");
    assert_eq!(lattice_state(&client).await, before);
    let st = client.app_status("full").await.unwrap();
    assert_eq!(st.status, AppState::Undeployed);
    // The versions stay: it can be deployed again by name.
    let list = cli.run(&["app", "list", "-o", "json"]).await.ok().json();
    assert_eq!(list[0]["name"], "full");
    assert_eq!(list[0]["latest_version"], "v1");
    assert!(list[0]["deployed_version"].is_null());

    cli.run(&["app", "deploy", "full", "--wait"]).await.ok();
    wait_for_app(&client, "full", AppState::Deployed, Duration::from_secs(60)).await;
    let out = cli.run(&["app", "delete", "full", "--wait"]).await.ok();
    assert!(out.stdout.contains("deleted full"), "{out:?}");
    assert_eq!(lattice_state(&client).await, before);
    let list = cli.run(&["app", "list", "-o", "json"]).await.ok().json();
    assert_eq!(list, serde_json::json!([]));
    let err = cli.run(&["app", "history", "full"]).await.err();
    assert!(err.contains("no application named full"), "{err}");
}

#[tokio::test]
async fn a_failing_placement_says_why_and_wait_exits_non_zero() {
    init_logging();
    let nats = NatsServer::start().await;
    let lattice = "failing";
    let _host = HostProcess::start(&nats.url(), lattice, &[("tier", "cloud")], &[]).await;
    let _manager = ManagerProcess::start(&nats.url(), lattice, &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let file = write_manifest(
        dir.path(),
        "nowhere.yaml",
        &format!(
            "apiVersion: core.oam.dev/v1beta1\nkind: Application\nmetadata:\n  name: nowhere\nspec:\n  components:\n    - name: g\n      type: component\n      properties:\n        image: {}\n      traits:\n        - type: spreadscaler\n          properties:\n            instances: 2\n            spread:\n              - name: edge\n                requirements: {{ tier: edge }}\n",
            component_ref("greeter")
        ),
    );
    let cli = Cli::new(&nats.url(), lattice);
    let stderr = cli
        .run(&[
            "app",
            "deploy",
            file.to_str().unwrap(),
            "--wait",
            "--timeout",
            "30s",
        ])
        .await
        .err();
    assert!(
        stderr.contains("0 of 1 hosts match requirements {tier=edge}"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    let st = cli
        .run(&["app", "status", "nowhere", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(st["status"], "failed");
    assert_eq!(st["scalers"][0]["state"], "failed");
}

#[tokio::test]
async fn a_failing_command_backs_off_with_the_host_error_in_status_and_recovers() {
    init_logging();
    let nats = NatsServer::start().await;
    let lattice = "backoff";
    let host = HostProcess::start(&nats.url(), lattice, &[], &["--heartbeat-interval", "1s"]).await;
    let _manager = ManagerProcess::start(&nats.url(), lattice, &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let app = |version: &str, image: &str| {
        write_manifest(
            dir.path(),
            &format!("{version}.yaml"),
            &format!(
                "apiVersion: core.oam.dev/v1beta1\nkind: Application\nmetadata:\n  name: flaky\n  annotations:\n    version: {version}\nspec:\n  components:\n    - name: g\n      type: component\n      properties:\n        image: {image}\n      traits:\n        - type: spreadscaler\n          properties:\n            instances: 1\n"
            ),
        )
    };
    let missing = dir.path().join("missing.wasm");
    let v1 = app("v1", &format!("file://{}", missing.display()));
    let cli = Cli::new(&nats.url(), lattice);
    let stderr = cli
        .run(&[
            "app",
            "deploy",
            v1.to_str().unwrap(),
            "--wait",
            "--timeout",
            "30s",
        ])
        .await
        .err();
    assert!(stderr.contains("flaky failed"), "{stderr}");
    let client = nats.client(lattice).await;
    let st = client.app_status("flaky").await.unwrap();
    assert_eq!(st.status, AppState::Failed);
    let reason = st.scalers[0].reason.clone().unwrap_or_default();
    assert!(
        reason.contains(host.id()) && reason.contains("retrying every"),
        "{reason}"
    );
    // It is retried, each time after a longer wait (the schedule itself is tested with a
    // paused clock in the manager's planning).
    trellis_tests::wait_for("a second failure", Duration::from_secs(60), || {
        let client = &client;
        async move {
            let st = client.app_status("flaky").await.ok()?;
            let reason = st.scalers.first()?.reason.clone()?;
            let failures: u32 = reason
                .rsplit("(failed ")
                .next()?
                .split(' ')
                .next()?
                .parse()
                .ok()
                .filter(|n| *n >= 2)?;
            let wait =
                Duration::from_millis(500 << (failures - 1).min(6)).min(Duration::from_secs(30));
            let expected = format!("retrying every {}", humantime::format_duration(wait));
            reason.contains(&expected).then_some(())
        }
    })
    .await;

    // A fixed version deploys.
    let v2 = app("v2", &component_ref("greeter"));
    cli.run(&["app", "deploy", v2.to_str().unwrap(), "--wait"])
        .await
        .ok();
    assert_eq!(replicas(&client, "flaky-g").await.values().sum::<u32>(), 1);
}
