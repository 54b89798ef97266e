//! Telemetry from every source: a component's own logs and spans, an external provider
//! started by a host (inheriting its settings), the deployment manager's reconcile passes,
//! and what happens when the collector is unreachable.

use trellis_lattice::control::{ScaleComponent, StartProvider};
use trellis_lattice::Placement;
use trellis_tests::otlp::pairs;
use trellis_tests::{
    bin, component_ref, connected_trace, counter_link, init_logging, scale_request, Cli,
    HostProcess, ManagerProcess, NatsServer, OtlpReceiver, Protocol,
};

fn scale(id: &str, component: &str) -> ScaleComponent {
    scale_request(id, component, 2)
}

#[tokio::test]
async fn a_components_log_and_span_join_the_invocations_trace() {
    init_logging();
    let receiver = OtlpReceiver::start().await;
    let nats = NatsServer::start().await;
    let otel = receiver.env(Protocol::Grpc);
    let host =
        HostProcess::start_with_env(&nats.url(), "otel-guest", &[], &[], &pairs(&otel)).await;
    let client = nats.client("otel-guest").await;
    // Its own spans are timed with the wall clock, which it must be granted.
    let mut traced = scale("traced", "traced");
    traced.grants.wall_clock = true;
    client
        .scale_component(host.id(), &traced)
        .await
        .expect("traced starts");
    let out = client
        .call("traced", "work", &[serde_json::json!("abc")])
        .await
        .expect("call");
    assert_eq!(out, serde_json::json!("cba"));

    let (invocation, own) = receiver
        .wait_for("the invocation span and the component's own span", |r| {
            let spans = r.spans();
            let own = spans.iter().find(|s| s.name == "reverse")?.clone();
            let inv = spans
                .iter()
                .find(|s| s.span_id == own.parent_span_id)?
                .clone();
            Some((inv, own))
        })
        .await;
    assert_eq!(invocation.attr("trellis.component.id"), Some("traced"));
    assert_eq!(invocation.kind, 2);
    assert_eq!(own.trace_id, invocation.trace_id);
    assert_eq!(own.attr("input.length"), Some("3"));
    assert_eq!(own.attr("trellis.component.id"), Some("traced"));
    assert_eq!(
        own.resource.get("service.instance.id").map(String::as_str),
        Some(host.id())
    );
    let log = receiver
        .wait_for("the component's wasi:logging record", |r| {
            r.logs().into_iter().find(|l| l.body == "reversing 3 bytes")
        })
        .await;
    assert_eq!(log.trace_id, invocation.trace_id, "{log:?}");
    assert_eq!(log.span_id, invocation.span_id, "{log:?}");
    assert_eq!(log.severity_text, "INFO");
    assert_eq!(
        log.attributes.get("component_id").map(String::as_str),
        Some("traced")
    );
    // And the host log has it at the same level.
    assert!(host.log().contains("reversing 3 bytes"), "{}", host.log());
}

#[tokio::test]
async fn an_external_provider_exports_with_its_hosts_settings() {
    init_logging();
    let receiver = OtlpReceiver::start().await;
    let nats = NatsServer::start().await;
    let mut otel = receiver.env(Protocol::HttpProtobuf);
    otel.push((
        "OTEL_EXPORTER_OTLP_HEADERS".into(),
        "x-honeycomb-team=test-key".into(),
    ));
    let host = HostProcess::start_with_env(&nats.url(), "otel-ext", &[], &[], &pairs(&otel)).await;
    let client = nats.client("otel-ext").await;
    client
        .put_config("bucket", [("bucket".to_string(), "ext".to_string())].into())
        .await
        .expect("config");
    let exe = bin("trellis-provider-keyvalue-nats");
    client
        .start_provider(
            &Placement::Host(host.id().to_string()),
            &StartProvider {
                provider_id: "kv-ext".into(),
                image: format!("file://{}", exe.display()),
                config: vec![],
                annotations: Default::default(),
            },
        )
        .await
        .expect("provider starts");
    client
        .scale_component(host.id(), &scale("counter", "counter"))
        .await
        .expect("counter");
    client
        .put_link(counter_link("counter", "kv-ext", "bucket"))
        .await
        .expect("link");
    assert_eq!(
        client
            .call("counter", "increment", &[serde_json::json!("k")])
            .await
            .expect("call"),
        1
    );

    let provider_span = receiver
        .wait_for("a span from the provider process", |r| {
            r.spans()
                .into_iter()
                .find(|s| s.service == "trellis-provider-keyvalue-nats")
        })
        .await;
    assert_eq!(
        provider_span
            .resource
            .get("service.instance.id")
            .map(String::as_str),
        Some("kv-ext")
    );
    assert_eq!(
        provider_span
            .resource
            .get("trellis.host.id")
            .map(String::as_str),
        Some(host.id())
    );
    // Its parent is the host's client span of the import call, whose parent is the counter's
    // invocation (the test's own call, not exported, is the trace's root).
    let spans = receiver
        .wait_for("the host's side of the call", |r| {
            let spans = r.spans();
            let import = spans
                .iter()
                .find(|s| s.span_id == provider_span.parent_span_id)?;
            spans
                .iter()
                .any(|s| s.span_id == import.parent_span_id)
                .then_some(spans)
        })
        .await;
    let import = spans
        .iter()
        .find(|s| s.span_id == provider_span.parent_span_id)
        .expect("import span");
    assert_eq!((import.service.as_str(), import.kind), ("trellis-host", 3));
    let invocation = spans
        .iter()
        .find(|s| s.span_id == import.parent_span_id)
        .expect("invocation");
    assert_eq!(invocation.attr("trellis.component.id"), Some("counter"));
    assert_eq!(invocation.trace_id, provider_span.trace_id);
    let headers = receiver.headers();
    assert!(
        headers
            .iter()
            .any(|h| h.get("x-honeycomb-team").map(String::as_str) == Some("test-key")),
        "OTEL_EXPORTER_OTLP_HEADERS are sent"
    );
}

#[tokio::test]
async fn a_reconcile_pass_is_one_trace_with_its_commands_and_the_hosts_work() {
    init_logging();
    let receiver = OtlpReceiver::start().await;
    let nats = NatsServer::start().await;
    let otel = receiver.env(Protocol::Grpc);
    let _host =
        HostProcess::start_with_env(&nats.url(), "otel-deploy", &[], &[], &pairs(&otel)).await;
    let _manager =
        ManagerProcess::start_with_env(&nats.url(), "otel-deploy", &[], &pairs(&otel)).await;
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("app.yaml");
    std::fs::write(
        &file,
        format!(
            "apiVersion: core.oam.dev/v1beta1\nkind: Application\nmetadata:\n  name: traced-app\n  annotations:\n    version: v1\nspec:\n  components:\n    - name: greet\n      type: component\n      properties:\n        image: {}\n      traits:\n        - type: spreadscaler\n          properties:\n            instances: 1\n",
            component_ref("greeter")
        ),
    )
    .expect("manifest");
    Cli::new(&nats.url(), "otel-deploy")
        .run(&["app", "deploy", file.to_str().expect("path"), "--wait"])
        .await
        .ok();

    let trace = receiver
        .wait_for("the reconcile pass's trace", |r| {
            let spans = r.spans();
            let root = spans
                .iter()
                .find(|s| s.name == "reconcile traced-app" && s.parent_span_id.is_empty())?;
            let trace = connected_trace(&spans, &root.trace_id).ok()?;
            let command = trace
                .iter()
                .find(|s| s.name == "component.scale" && s.parent_span_id == root.span_id)?;
            trace
                .iter()
                .any(|s| {
                    s.service == "trellis-host"
                        && s.name == "control component.scale"
                        && s.parent_span_id == command.span_id
                })
                .then_some(trace)
        })
        .await;
    let root = trace
        .iter()
        .find(|s| s.parent_span_id.is_empty())
        .expect("root");
    assert_eq!(root.service, "trellis-deploy");
    assert!(root
        .resource
        .get("service.instance.id")
        .is_some_and(|id| id.starts_with("trellis-deploy-")));
}

#[tokio::test]
async fn an_unreachable_collector_costs_no_request_an_error_and_drops_are_counted() {
    init_logging();
    let receiver = OtlpReceiver::start().await;
    // A collector that accepts connections and never answers: every span export hangs
    // until its timeout while the queue fills.
    let blackhole = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead = format!("http://{}", blackhole.local_addr().expect("addr"));
    let nats = NatsServer::start().await;
    let mut otel = receiver.env(Protocol::Grpc);
    otel.extend([
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT".to_string(), dead),
        ("OTEL_BSP_MAX_QUEUE_SIZE".to_string(), "32".to_string()),
        (
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE".to_string(),
            "8".to_string(),
        ),
        (
            "OTEL_EXPORTER_OTLP_TIMEOUT".to_string(),
            "30000".to_string(),
        ),
    ]);
    let host = HostProcess::start_with_env(&nats.url(), "otel-dead", &[], &[], &pairs(&otel)).await;
    let client = nats.client("otel-dead").await;
    client
        .scale_component(host.id(), &scale("greeter", "greeter"))
        .await
        .expect("greeter");
    for i in 0..300 {
        let out = client
            .call("greeter", "greet", &[serde_json::json!(format!("n{i}"))])
            .await
            .unwrap_or_else(|e| panic!("call {i} failed with the collector away: {e}"));
        assert!(out.as_str().is_some_and(|s| s.contains(&format!("n{i}"))));
    }
    // Metrics still reach the receiver (their own endpoint), and say what was dropped.
    receiver
        .wait_for("the drop count", |r| {
            r.points().into_iter().find(|p| {
                p.name == "trellis.telemetry.dropped"
                    && p.attributes.get("signal").map(String::as_str) == Some("spans")
                    && p.value > 0.0
            })
        })
        .await;
    assert!(
        receiver.spans().is_empty(),
        "no span went to the metrics receiver"
    );
    drop(blackhole);
}
