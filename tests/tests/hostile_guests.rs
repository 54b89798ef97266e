//! Hostile components beyond the infinite loop and the memory bomb (`hostile_components`):
//! a stack overflow, a trap storm, 100 MiB of stdout, a component importing every interface
//! the host knows, one calling itself through a link, one holding its instance forever. Each
//! runs on a `trellis-host` process next to `greeter`, which keeps answering throughout.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use trellis_lattice::control::ScaleComponent;
use trellis_lattice::link::Link;
use trellis_lattice::LatticeClient;
use trellis_tests::proc::rss_bytes;
use trellis_tests::{
    component_ref, greeter_keeps_answering, init_logging, wait_for, HostProcess, NatsServer,
};

fn scale(id: &str, replicas: u32, timeout_ms: Option<u64>) -> ScaleComponent {
    scale_image(id, id, replicas, timeout_ms)
}

fn scale_image(id: &str, image: &str, replicas: u32, timeout_ms: Option<u64>) -> ScaleComponent {
    // Through JSON, so fields other work adds keep their defaults.
    serde_json::from_value(serde_json::json!({
        "component_id": id, "image": component_ref(image), "replicas": replicas,
        "timeout_ms": timeout_ms,
    }))
    .expect("a scale request")
}

/// A host running `greeter` and `hostile` (with `replicas` and a time limit).
async fn host_with(
    nats: &NatsServer,
    lattice: &str,
    hostile: &str,
    replicas: u32,
    timeout_ms: Option<u64>,
) -> (HostProcess, LatticeClient) {
    let host = HostProcess::start(&nats.url(), lattice, &[], &[]).await;
    let client = nats.client(lattice).await;
    let greeter = scale("greeter", 4, None);
    client
        .scale_component(host.id(), &greeter)
        .await
        .expect("greeter starts");
    client
        .scale_component(host.id(), &scale(hostile, replicas, timeout_ms))
        .await
        .unwrap_or_else(|e| panic!("{hostile} starts: {e}"));
    (host, client)
}

async fn active_invocations(client: &LatticeClient, host: &HostProcess) -> u64 {
    let inv = client.inventory(host.id()).await.expect("inventory");
    inv.resources.active_invocations
}

#[tokio::test]
async fn a_stack_overflow_is_a_trap_of_that_call_only() {
    init_logging();
    let nats = NatsServer::start().await;
    let (_host, client) = host_with(&nats, "hostile-recurse", "recurse", 2, None).await;
    for _ in 0..3 {
        let err = client
            .call("recurse", "run", &[])
            .await
            .expect_err("endless recursion fails")
            .to_string();
        assert!(err.contains("trapped"), "{err}");
        greeter_keeps_answering(&client).await;
    }
}

#[tokio::test]
async fn a_trap_storm_is_counted_whole_and_logged_a_few_times_a_second() {
    init_logging();
    let nats = NatsServer::start().await;
    let (host, client) = host_with(&nats, "hostile-storm", "crash", 16, None).await;
    let log_before = host.log().len();
    let traps = Arc::new(AtomicU64::new(0));
    let storm = Duration::from_secs(4);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let client = Arc::new(NatsServer::client_for(&nats.url(), "hostile-storm").await);
        for _ in 0..16 {
            let (client, traps) = (Arc::clone(&client), Arc::clone(&traps));
            tasks.push(tokio::spawn(async move {
                // At least a thousand traps, however slow the machine (within reason).
                while (started.elapsed() < storm || traps.load(Ordering::Relaxed) < 1000)
                    && started.elapsed() < Duration::from_secs(120)
                {
                    let err = client.call("crash", "run", &[]).await.expect_err("a trap");
                    assert!(err.to_string().contains("trapped"), "{err}");
                    traps.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
    }
    // The greeter answers during the storm.
    while started.elapsed() < storm {
        greeter_keeps_answering(&client).await;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for t in tasks {
        t.await.expect("storm task");
    }
    let elapsed = started.elapsed();
    let traps = traps.load(Ordering::Relaxed);
    eprintln!(
        "trap storm: {traps} traps in {elapsed:?} ({:.0}/s)",
        traps as f64 / elapsed.as_secs_f64()
    );
    assert!(traps >= 1000, "only {traps} traps");

    // Every trap is counted ...
    let stats = client.host_stats(host.id()).await.expect("stats");
    let crash = stats
        .components
        .iter()
        .find(|c| c.component_id == "crash")
        .expect("crash stats");
    assert_eq!(crash.errors, traps, "every trap counted");
    // ... but the log holds ten a second (plus what each printed), not one per trap.
    let log = host.log();
    let storm_log = &log[log_before.min(log.len())..];
    let failures = storm_log.matches("invocation failed").count() as u64;
    let bound = (elapsed.as_secs() + 2) * 10;
    assert!(
        failures <= bound,
        "{failures} failure records for {traps} traps"
    );
    assert!(
        storm_log.len() < 2_000 * bound as usize,
        "{} bytes logged for {traps} traps",
        storm_log.len()
    );
    assert!(
        storm_log.contains("left_out"),
        "the records say how many were left out"
    );
    greeter_keeps_answering(&client).await;
}

#[tokio::test]
async fn a_hundred_megabytes_of_stdout_keep_only_a_tail() {
    init_logging();
    let nats = NatsServer::start().await;
    let (host, client) = host_with(&nats, "hostile-chatter", "chatter", 1, Some(60_000)).await;
    let pid = host.pid().expect("pid");
    let log_before = host.log().len();
    let call = {
        let client = NatsServer::client_for(&nats.url(), "hostile-chatter").await;
        tokio::spawn(async move { client.call("chatter", "run", &[]).await })
    };
    let mut peak = 0;
    while !call.is_finished() {
        peak = peak.max(rss_bytes(pid));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    call.await.expect("task").expect("chatter finishes");
    eprintln!("100 MiB of stdout: host RSS peaked at {} MiB", peak >> 20);
    // 100 MiB went through; the host kept a 4 KiB tail of it.
    assert!(peak < 300 << 20, "host RSS peaked at {peak} bytes");
    let logged = host.log().len() - log_before;
    assert!(logged < 64 << 10, "{logged} bytes logged");
    greeter_keeps_answering(&client).await;
}

#[tokio::test]
async fn a_component_importing_every_interface_starts_and_fails_clearly_where_unlinked() {
    init_logging();
    let nats = NatsServer::start().await;
    let (_host, client) = host_with(&nats, "hostile-omnivore", "omnivore", 1, None).await;
    let touched = client
        .call("omnivore", "touch", &[serde_json::json!(false)])
        .await
        .expect("the host's own interfaces answer");
    assert_eq!(touched, serde_json::json!(20));
    let err = client
        .call("omnivore", "touch", &[serde_json::json!(true)])
        .await
        .expect_err("nothing is linked")
        .to_string();
    assert!(err.contains("wasi:keyvalue"), "{err}");
    greeter_keeps_answering(&client).await;
}

/// `source` calls `target` through `trellis:ouroboros/again`.
fn ring_link(source: &str, target: &str) -> Link {
    Link {
        source_id: source.into(),
        target_id: target.into(),
        name: "default".into(),
        wit_namespace: "trellis".into(),
        wit_package: "ouroboros".into(),
        interfaces: vec!["again".into()],
        source_config: vec![],
        target_config: vec![],
    }
}

/// Calls into the ring and returns how the chain failed.
async fn ring_fails(client: &LatticeClient) -> String {
    tokio::time::timeout(
        Duration::from_secs(60),
        client.call("ouroboros", "run", &[serde_json::json!(0)]),
    )
    .await
    .expect("the chain ends")
    .expect_err("an endless chain fails")
    .to_string()
}

#[tokio::test]
async fn a_component_calling_itself_through_a_link_is_stopped_by_depth_then_by_time() {
    init_logging();
    let nats = NatsServer::start().await;
    // A link from a component to itself is refused, so the loop is a ring of two: `a` calls
    // `b`, which calls `a`. More instances than the chain may be deep: the depth limit ends it.
    let (host, client) = host_with(&nats, "hostile-ouroboros", "ouroboros", 20, None).await;
    let b = scale_image("ouroboros-b", "ouroboros", 20, None);
    client
        .scale_component(host.id(), &b)
        .await
        .expect("b starts");
    for (source, target) in [("ouroboros", "ouroboros-b"), ("ouroboros-b", "ouroboros")] {
        client
            .put_link(ring_link(source, target))
            .await
            .expect("a ring of links");
    }
    let err = ring_fails(&client).await;
    assert!(err.contains("call chain too deep"), "{err}");
    eprintln!("the ring ended with ({} bytes): {err}", err.len());
    assert!(err.len() < 16 << 10, "{} bytes of error", err.len());
    greeter_keeps_answering(&client).await;
    wait_for("no instance held", Duration::from_secs(30), || async {
        (active_invocations(&client, &host).await == 0).then_some(())
    })
    .await;

    // Fewer instances than that: the chain waits for an instance until the first caller's
    // time limit, and what was queued behind it is not run for a caller that gave up.
    for (id, image) in [("ouroboros", "ouroboros"), ("ouroboros-b", "ouroboros")] {
        client
            .scale_component(host.id(), &scale_image(id, image, 1, Some(2_000)))
            .await
            .expect("rescaled");
    }
    let err = ring_fails(&client).await;
    assert!(err.contains("time limit"), "{err}");
    wait_for("no instance held", Duration::from_secs(15), || async {
        (active_invocations(&client, &host).await == 0).then_some(())
    })
    .await;
    greeter_keeps_answering(&client).await;
}

#[tokio::test]
async fn an_instance_held_forever_is_ended_by_its_time_limit() {
    init_logging();
    let nats = NatsServer::start().await;
    let (host, client) = host_with(&nats, "hostile-holder", "holder", 1, Some(2_000)).await;
    for _ in 0..2 {
        let call = {
            let client = NatsServer::client_for(&nats.url(), "hostile-holder").await;
            tokio::spawn(async move { client.call("holder", "run", &[]).await })
        };
        wait_for("the holder to hold", Duration::from_secs(30), || async {
            (active_invocations(&client, &host).await >= 1).then_some(())
        })
        .await;
        // Other components are unaffected while it holds.
        greeter_keeps_answering(&client).await;
        let err = call
            .await
            .expect("task")
            .expect_err("held forever fails")
            .to_string();
        assert!(err.contains("time limit"), "{err}");
    }
    wait_for(
        "the instance given back",
        Duration::from_secs(10),
        || async { (active_invocations(&client, &host).await == 0).then_some(()) },
    )
    .await;
}
