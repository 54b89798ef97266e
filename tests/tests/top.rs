//! `trellis top` reads live figures from the hosts themselves: rates, quantiles,
//! instances and memory of components under load, with no collector anywhere.

use std::sync::Arc;

use trellis_tests::{init_logging, scale_request, Cli, HostProcess, NatsServer};

#[tokio::test]
async fn top_shows_every_components_live_figures_per_host() {
    init_logging();
    let nats = NatsServer::start().await;
    let a = HostProcess::start(&nats.url(), "top", &[], &[]).await;
    let b = HostProcess::start(&nats.url(), "top", &[], &[]).await;
    let client = Arc::new(nats.client("top").await);
    client
        .scale_component(a.id(), &scale_request("greeter", "greeter", 3))
        .await
        .expect("greeter");
    client
        .scale_component(b.id(), &scale_request("crash", "crash", 2))
        .await
        .expect("crash");

    // Calls keep coming while top samples: greeter succeeds, crash fails every time.
    let stop = tokio_util::sync::CancellationToken::new();
    let load = {
        let (client, stop) = (Arc::clone(&client), stop.clone());
        tokio::spawn(async move {
            while !stop.is_cancelled() {
                client
                    .call("greeter", "greet", &[serde_json::json!("x")])
                    .await
                    .expect("greet");
                let _ = client.call("crash", "run", &[]).await;
            }
        })
    };
    let out = Cli::new(&nats.url(), "top")
        .run(&["top", "-o", "json", "--interval", "1s"])
        .await
        .ok();
    stop.cancel();
    load.await.expect("load");

    let rows: Vec<serde_json::Value> =
        serde_json::from_str(out.stdout.trim()).expect("one JSON line");
    let row = |id: &str| {
        rows.iter()
            .find(|r| r["component_id"] == id)
            .unwrap_or_else(|| panic!("{id} in {rows:#?}"))
            .clone()
    };
    let greeter = row("greeter");
    assert_eq!(greeter["host_id"], a.id());
    assert_eq!(greeter["max"], 3);
    // Counts, not speeds: calls happened, none of greeter's failed, all of crash's did; and
    // whenever the interval saw calls, it has quantiles in order.
    assert!(
        greeter["invocations_total"].as_u64().unwrap() > 0,
        "{greeter}"
    );
    assert_eq!(greeter["errors_total"], 0);
    if greeter["invocations_per_sec"].as_f64().unwrap() > 0.0 {
        let (p50, p99) = (greeter["p50_us"].as_u64(), greeter["p99_us"].as_u64());
        assert!(p50.is_some_and(|p| p > 0) && p99 >= p50, "{greeter}");
    }
    assert!(greeter["memory_peak_bytes"].as_u64().unwrap() > 0);
    let crash = row("crash");
    assert_eq!(crash["host_id"], b.id());
    assert!(crash["errors_total"].as_u64().unwrap() > 0, "{crash}");
    assert_eq!(crash["errors_total"], crash["invocations_total"]);

    // The table for people names both components.
    let table = Cli::new(&nats.url(), "top")
        .run(&["top", "--interval", "200ms", "--count", "1"])
        .await
        .ok()
        .stdout;
    assert!(
        table.contains("greeter") && table.contains("crash") && table.contains("INV/S"),
        "{table}"
    );

    // A host id that is not one is refused before anything is sent.
    let err = Cli::new(&nats.url(), "top")
        .run(&["top", "--host", "a.*", "--count", "1", "--interval", "10ms"])
        .await
        .err();
    assert!(err.contains("host id"), "{err}");
}
