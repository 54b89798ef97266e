//! Components that would take a host down: invocations that never end (their limits have a
//! ceiling, and a stop interrupts them) and memory bombs (one budget bounds all guest memory
//! of a host). The greeter on the same host keeps answering throughout.

use std::time::Duration;

use trellis_lattice::control::ScaleComponent;
use trellis_lattice::LatticeClient;
use trellis_tests::proc::rss_bytes;
use trellis_tests::{
    component_ref, greeter_keeps_answering, init_logging, wait_for, HostProcess, NatsServer,
};

/// Sends a raw request and returns the decoded reply (`{ok, error, kind, data}`).
async fn raw(
    client: &LatticeClient,
    subject: String,
    payload: impl Into<bytes::Bytes>,
) -> serde_json::Value {
    let reply = tokio::time::timeout(
        Duration::from_secs(30),
        client.nats().request(subject, payload.into()),
    )
    .await
    .expect("a reply within 30s (the host must not hang)")
    .expect("a reply");
    serde_json::from_slice(&reply.payload).expect("a JSON reply")
}

fn refused(reply: &serde_json::Value, kind: &str, text: &str) {
    assert_eq!(reply["ok"], false, "{reply}");
    assert_eq!(reply["kind"], kind, "{reply}");
    let error = reply["error"].as_str().unwrap_or_default();
    assert!(error.contains(text), "expected {text:?} in {reply}");
}

fn scale(id: &str, image: &str, replicas: u32) -> ScaleComponent {
    ScaleComponent {
        component_id: id.into(),
        image: image.into(),
        replicas,
        config: vec![],
        max_memory_bytes: None,
        timeout_ms: None,
        annotations: Default::default(),
        ..Default::default()
    }
}

async fn host_with_greeter(
    nats: &NatsServer,
    lattice: &str,
    extra: &[&str],
) -> (HostProcess, LatticeClient) {
    let host = HostProcess::start(&nats.url(), lattice, &[], extra).await;
    let client = nats.client(lattice).await;
    client
        .scale_component(host.id(), &scale("greeter", &component_ref("greeter"), 4))
        .await
        .expect("greeter starts");
    (host, client)
}

#[tokio::test]
async fn limits_have_a_ceiling_and_a_stop_interrupts_running_invocations() {
    init_logging();
    let nats = NatsServer::start().await;
    let (host, client) =
        host_with_greeter(&nats, "hostile-runaway", &["--shutdown-timeout", "1s"]).await;
    let body = serde_json::json!({
        "component_id": "spin", "image": component_ref("spin"), "replicas": 2,
        "timeout_ms": u64::MAX,
    });
    let reply = raw(
        &client,
        client.subjects().component_scale(host.id()),
        body.to_string(),
    )
    .await;
    refused(&reply, "invalid", "above this host's ceiling");

    let mut spin = scale("spin", &component_ref("spin"), 2);
    spin.timeout_ms = Some(300_000);
    client
        .scale_component(host.id(), &spin)
        .await
        .expect("spin starts");
    let calls: Vec<_> = (0..2)
        .map(|_| {
            let nats = nats.url();
            tokio::spawn(async move {
                let client = trellis_tests::NatsServer::client_for(&nats, "hostile-runaway").await;
                client.call("spin", "run", &[]).await
            })
        })
        .collect();
    wait_for(
        "two spinning invocations",
        Duration::from_secs(30),
        || async {
            let inv = client.inventory(host.id()).await.ok()?;
            (inv.resources.active_invocations >= 2).then_some(())
        },
    )
    .await;
    client
        .scale_component(host.id(), &scale("spin", "", 0))
        .await
        .expect("spin stops");
    // Before, they spun on until the host was restarted.
    wait_for(
        "no invocation left running",
        Duration::from_secs(30),
        || async {
            let inv = client.inventory(host.id()).await.ok()?;
            (inv.resources.active_invocations == 0).then_some(())
        },
    )
    .await;
    for call in calls {
        let err = call
            .await
            .expect("task")
            .expect_err("an interrupted call fails");
        assert!(err.to_string().contains("stopped"), "{err}");
    }
    greeter_keeps_answering(&client).await;
}

#[tokio::test]
async fn the_host_memory_budget_bounds_all_guest_memory() {
    init_logging();
    let nats = NatsServer::start().await;
    let (host, client) =
        host_with_greeter(&nats, "hostile-memory", &["--memory-budget", "256MiB"]).await;
    let mut big = scale("hog", &component_ref("hog"), 4);
    big.max_memory_bytes = Some(1 << 30);
    let err = client
        .scale_component(host.id(), &big)
        .await
        .expect_err("an instance larger than the budget is refused")
        .to_string();
    assert!(
        err.contains("does not fit in this host's memory budget of 256 MiB"),
        "{err}"
    );

    let mut hog = scale("hog", &component_ref("hog"), 4);
    hog.max_memory_bytes = Some(200 << 20);
    client
        .scale_component(host.id(), &hog)
        .await
        .expect("hog starts");
    let pid = host.pid().expect("pid");
    let calls: Vec<_> = (0..4)
        .map(|_| {
            let nats = nats.url();
            tokio::spawn(async move {
                let client = trellis_tests::NatsServer::client_for(&nats, "hostile-memory").await;
                client.call("hog", "run", &[]).await
            })
        })
        .collect();
    let mut peak = 0;
    let mut errors = Vec::new();
    for call in calls {
        while !call.is_finished() {
            peak = peak.max(rss_bytes(pid));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        errors.push(
            call.await
                .expect("task")
                .expect_err("a hog fails")
                .to_string(),
        );
    }
    // Four instances allowed 200 MiB each would hold 800 MiB without a budget.
    assert!(peak < 600 << 20, "host RSS peaked at {peak} bytes");
    assert!(errors.iter().all(|e| e.contains("memory")), "{errors:?}");
    assert!(
        errors.iter().any(|e| e.contains("memory budget")),
        "{errors:?}"
    );
    let inv = client.inventory(host.id()).await.expect("inventory");
    assert_eq!(
        inv.resources.memory_in_use_bytes, 0,
        "instances give their memory back"
    );
    assert_eq!(inv.resources.memory_budget_bytes, 256 << 20);
    greeter_keeps_answering(&client).await;
}
