//! Hostile components hit their limits; everything else keeps serving.

use std::time::Duration;

use trellis_lattice::control::ScaleComponent;
use trellis_lattice::rpc::RemoteErrorKind;
use trellis_lattice::{rpc::CallError, Error};
use trellis_tests::{component_ref, init_logging, InProcessHost, NatsServer};

fn start(id: &str, timeout_ms: Option<u64>, max_memory: Option<u64>) -> ScaleComponent {
    ScaleComponent {
        component_id: id.to_string(),
        image: component_ref(id),
        replicas: 2,
        config: Vec::new(),
        max_memory_bytes: max_memory,
        timeout_ms,
        annotations: Default::default(),
        ..Default::default()
    }
}

fn remote_kind(err: &Error) -> Option<RemoteErrorKind> {
    match err {
        Error::Call(CallError::Remote(report)) => Some(report.kind),
        _ => None,
    }
}

#[tokio::test]
async fn spin_hog_and_crash_are_stopped_and_greeter_keeps_answering() {
    init_logging();
    let nats = NatsServer::start().await;
    let host = InProcessHost::start(&nats.url(), "limits", &[]).await;
    let client = nats.client("limits").await;
    let id = host.id();
    client
        .scale_component(&id, &start("greeter", None, None))
        .await
        .expect("greeter");
    // The first call describes the component: done before spin runs, so the calls made
    // while it spins are plain calls even on a loaded machine.
    client
        .call("greeter", "greet", &[serde_json::json!("warm")])
        .await
        .expect("greeter");
    client
        .scale_component(&id, &start("spin", Some(6000), None))
        .await
        .expect("spin");
    client
        .scale_component(&id, &start("hog", None, Some(16 << 20)))
        .await
        .expect("hog");
    client
        .scale_component(&id, &start("crash", None, None))
        .await
        .expect("crash");

    // While spin burns its time budget, greeter answers.
    let spinning = tokio::spawn({
        let nats_url = nats.url();
        async move {
            let nats = trellis_lattice::client::connect(&nats_url, &Default::default(), "spin")
                .await
                .expect("nats");
            let client = trellis_lattice::LatticeClient::new(nats, "limits").expect("client");
            client.call("spin", "run", &[]).await
        }
    });
    // Greeter calls start only once spin is running (the host counts it as active).
    trellis_tests::wait_for("spin to be running", Duration::from_secs(60), || {
        let (client, id) = (&client, &id);
        async move {
            let inv = client.inventory(id).await.ok()?;
            (inv.resources.active_invocations >= 1).then_some(())
        }
    })
    .await;
    let mut overlapped = 0;
    for _ in 0..20 {
        let v = client
            .call("greeter", "greet", &[serde_json::json!("busy")])
            .await
            .expect("greeter");
        assert_eq!(v, "Hello, busy!");
        if !spinning.is_finished() {
            overlapped += 1;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(overlapped > 0, "no greeter call answered while spin ran");
    let err = spinning
        .await
        .expect("task")
        .expect_err("spin must be stopped");
    assert_eq!(remote_kind(&err), Some(RemoteErrorKind::TimeLimit), "{err}");
    assert!(
        err.to_string()
            .contains("execution time limit of 6s exceeded"),
        "{err}"
    );

    let err = client
        .call("hog", "run", &[])
        .await
        .expect_err("hog must be stopped");
    assert_eq!(
        remote_kind(&err),
        Some(RemoteErrorKind::MemoryLimit),
        "{err}"
    );
    assert!(
        err.to_string().contains("memory limit of 16 MiB exceeded"),
        "{err}"
    );

    let err = client
        .call("crash", "run", &[])
        .await
        .expect_err("crash traps");
    assert_eq!(remote_kind(&err), Some(RemoteErrorKind::Trap), "{err}");
    assert!(
        err.to_string().contains("crash component asked to crash"),
        "{err}"
    );

    // Each can be called again (a fresh instance each time), and greeter still answers.
    let err = client
        .call("crash", "run", &[])
        .await
        .expect_err("crash traps again");
    assert_eq!(remote_kind(&err), Some(RemoteErrorKind::Trap));
    let v = client
        .call("greeter", "greet", &[serde_json::json!("after")])
        .await
        .expect("greeter");
    assert_eq!(v, "Hello, after!");

    // A limit above the host's ceiling is refused up front.
    let err = client
        .scale_component(&id, &start("greeter", None, Some(8 << 30)))
        .await
        .expect_err("above the ceiling");
    assert!(
        err.to_string().contains("above this host's ceiling"),
        "{err}"
    );
    host.stop().await;
}
