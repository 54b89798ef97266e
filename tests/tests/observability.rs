//! OpenTelemetry export across the lattice, checked with a real OTLP receiver: one HTTP
//! request is one connected trace over two hosts and a provider; `trellis call` likewise;
//! failures are error spans and error metrics; component output becomes log records in the
//! request's trace.

use std::time::Duration;

use trellis_lattice::LatticeClient;
use trellis_tests::otlp::{pairs, ReceivedSpan};
use trellis_tests::{
    connected_trace, counter_across_two_hosts, init_logging, route, scale_request,
    start_http_server, Cli, HostProcess, NatsServer, OtlpReceiver, Protocol,
};

fn env(receiver: &OtlpReceiver, protocol: Protocol) -> Vec<(String, String)> {
    receiver.env(protocol)
}

async fn scale(client: &LatticeClient, host: &str, id: &str, component: &str) {
    client
        .scale_component(host, &scale_request(id, component, 4))
        .await
        .unwrap_or_else(|e| panic!("{id} starts: {e}"));
}

/// The trace (connected, one root) in which `root` is the root span, once it holds spans
/// satisfying every check.
async fn whole_trace(
    receiver: &OtlpReceiver,
    what: &str,
    root: impl Fn(&ReceivedSpan) -> bool,
    complete: impl Fn(&[ReceivedSpan]) -> bool,
) -> Vec<ReceivedSpan> {
    receiver
        .wait_for(what, |r| {
            let spans = r.spans();
            let root = spans
                .iter()
                .find(|s| s.parent_span_id.is_empty() && root(s))?;
            let trace = connected_trace(&spans, &root.trace_id).ok()?;
            complete(&trace).then_some(trace)
        })
        .await
}

fn has(trace: &[ReceivedSpan], pred: impl Fn(&ReceivedSpan) -> bool) -> bool {
    trace.iter().any(pred)
}

#[tokio::test]
async fn an_http_request_is_one_trace_over_two_hosts_and_the_provider() {
    init_logging();
    let receiver = OtlpReceiver::start().await;
    let nats = NatsServer::start().await;
    let otel = env(&receiver, Protocol::Grpc);
    let a =
        HostProcess::start_with_env(&nats.url(), "otel", &[("tier", "edge")], &[], &pairs(&otel))
            .await;
    let b = HostProcess::start_with_env(&nats.url(), "otel", &[], &[], &pairs(&otel)).await;
    let client = nats.client("otel").await;
    counter_across_two_hosts(&client, a.id(), b.id(), "otel").await;
    let base = start_http_server(&client, a.id(), "web", &[]).await;
    route(&client, "web", "counter", "counter", Some("/counter"), None).await;

    let resp = reqwest::get(format!("{base}/counter/hits"))
        .await
        .expect("GET");
    assert_eq!(resp.status().as_u16(), 200);

    let trace = whole_trace(
        &receiver,
        "the HTTP request's trace",
        |s| s.name == "GET /counter/*",
        |t| {
            has(t, |s| {
                s.name.starts_with("counter ")
                    && s.resource.get("service.instance.id").map(String::as_str) == Some(a.id())
            }) && has(t, |s| {
                s.attr("trellis.provider.id") == Some("kv-nats")
                    && s.resource.get("service.instance.id").map(String::as_str) == Some(b.id())
            })
        },
    )
    .await;
    let root = trace
        .iter()
        .find(|s| s.parent_span_id.is_empty())
        .expect("root");
    assert_eq!(root.kind, 2, "the ingress span is a server span");
    assert_eq!(root.attr("http.request.method"), Some("GET"));
    assert_eq!(root.attr("http.route"), Some("/counter/*"));
    assert_eq!(root.attr("url.path"), Some("/counter/hits"));
    assert_eq!(root.attr("http.response.status_code"), Some("200"));
    assert_eq!(
        root.resource.get("trellis.label.tier").map(String::as_str),
        Some("edge")
    );
    assert_eq!(
        root.resource.get("service.name").map(String::as_str),
        Some("trellis-host")
    );
    let invocation = trace
        .iter()
        .find(|s| s.name.starts_with("counter "))
        .expect("invocation");
    assert_eq!(
        invocation.parent_span_id, root.span_id,
        "the invocation continues the ingress span"
    );
    assert_eq!(invocation.attr("trellis.component.id"), Some("counter"));
    assert!(has(&trace, |s| s.name == "instantiate"
        && s.parent_span_id == invocation.span_id));
    assert!(has(&trace, |s| s.name == "queue wait"
        && s.parent_span_id == invocation.span_id));
    let import = trace
        .iter()
        .find(|s| s.kind == 3 && s.attr("trellis.link.target") == Some("kv-nats"))
        .expect("a client span for the import call");
    assert_eq!(import.parent_span_id, invocation.span_id);
    assert_eq!(import.attr("trellis.link.name"), Some("default"));
    assert!(
        has(&trace, |s| s.kind == 2
            && s.attr("trellis.provider.id") == Some("kv-nats")
            && s.parent_span_id == import.span_id),
        "the provider's server span is the child of the import's client span: {trace:#?}"
    );

    // Metrics of the same request, with bounded attributes.
    receiver
        .wait_for("HTTP and component metrics", |r| {
            let points = r.points();
            let http = points.iter().any(|p| {
                p.name == "http.server.request.duration"
                    && p.attributes.get("http.route").map(String::as_str) == Some("/counter/*")
                    && p.attributes.get("http.request.method").map(String::as_str) == Some("GET")
                    && p.attributes
                        .get("http.response.status_code")
                        .map(String::as_str)
                        == Some("200")
            });
            let inv = points.iter().any(|p| {
                p.name == "trellis.component.invocations"
                    && p.attributes.get("trellis.component.id").map(String::as_str)
                        == Some("counter")
                    && p.value >= 1.0
            });
            let link = points.iter().any(|p| {
                p.name == "trellis.link.call.duration"
                    && p.attributes.get("trellis.link.target").map(String::as_str)
                        == Some("kv-nats")
            });
            let process = points.iter().any(|p| p.name == "process.memory.usage");
            let max = points.iter().any(|p| {
                p.name == "trellis.component.instances.max"
                    && p.attributes.get("trellis.component.id").map(String::as_str)
                        == Some("counter")
                    && p.value == 4.0
            });
            let active = points.iter().any(|p| {
                p.name == "trellis.component.instances.active"
                    && p.attributes.get("trellis.component.id").map(String::as_str)
                        == Some("counter")
            });
            let health = points.iter().any(|p| {
                p.name == "trellis.provider.health"
                    && p.attributes.get("trellis.provider.id").map(String::as_str)
                        == Some("kv-nats")
                    && p.value == 1.0
            });
            (http && inv && link && process && max && active && health).then_some(())
        })
        .await;
    for p in receiver.points() {
        assert!(
            p.attributes.values().all(|v| !v.contains("/counter/hits")),
            "no request path in metric attributes: {p:?}"
        );
    }

    // A caller that decided not to sample: nothing of its trace is exported anywhere, while
    // a sampled request sent after it arrives whole.
    let unsampled = "4bf92f3577b34da6a3ce929d0e0e4736";
    let client_http = reqwest::Client::new();
    for (trace_id, flags) in [
        (unsampled, "00"),
        ("0af7651916cd43dd8448eb211c80319c", "01"),
    ] {
        let resp = client_http
            .get(format!("{base}/counter/hits"))
            .header(
                "traceparent",
                format!("00-{trace_id}-00f067aa0ba902b7-{flags}"),
            )
            .send()
            .await
            .expect("GET");
        assert_eq!(resp.status().as_u16(), 200);
    }
    receiver
        .wait_for("the sampled request's spans from both hosts", |r| {
            // Each host exports in the order spans end: once the later request's spans from
            // A (its root) and B (the provider) are here, the earlier one's would be too.
            let spans = r.spans();
            let later = |s: &&ReceivedSpan| s.trace_id == "0af7651916cd43dd8448eb211c80319c";
            let from_a = spans
                .iter()
                .filter(later)
                .any(|s| s.name == "GET /counter/*");
            let from_b = spans
                .iter()
                .filter(later)
                .any(|s| s.attr("trellis.provider.id") == Some("kv-nats"));
            (from_a && from_b).then_some(())
        })
        .await;
    assert!(
        receiver.spans().iter().all(|s| s.trace_id != unsampled),
        "an unsampled trace exported spans"
    );
}

#[tokio::test]
async fn trellis_call_is_one_trace_from_the_cli_over_http_protobuf() {
    init_logging();
    let receiver = OtlpReceiver::start().await;
    let nats = NatsServer::start().await;
    let otel = env(&receiver, Protocol::HttpProtobuf);
    let a = HostProcess::start_with_env(&nats.url(), "otel-call", &[], &[], &pairs(&otel)).await;
    let b = HostProcess::start_with_env(&nats.url(), "otel-call", &[], &[], &pairs(&otel)).await;
    let client = nats.client("otel-call").await;
    counter_across_two_hosts(&client, a.id(), b.id(), "otel").await;

    let mut cli = Cli::new(&nats.url(), "otel-call");
    for (k, v) in &otel {
        cli = cli.env(k, v);
    }
    let out = cli
        .run(&["call", "counter", "increment", "\"n\""])
        .await
        .ok();
    assert_eq!(out.stdout.trim(), "1");

    let trace = whole_trace(
        &receiver,
        "the trace of trellis call",
        |s| s.name == "trellis call" && s.service == "trellis",
        |t| {
            has(t, |s| s.name.starts_with("counter "))
                && has(t, |s| s.attr("trellis.provider.id") == Some("kv-nats"))
        },
    )
    .await;
    let services: std::collections::BTreeSet<&str> =
        trace.iter().map(|s| s.service.as_str()).collect();
    assert!(
        services.contains("trellis") && services.contains("trellis-host"),
        "{services:?}"
    );
}

#[tokio::test]
async fn a_trap_is_an_error_span_an_error_metric_and_a_log_in_its_trace() {
    init_logging();
    let receiver = OtlpReceiver::start().await;
    let nats = NatsServer::start().await;
    let otel = env(&receiver, Protocol::Grpc);
    let host = HostProcess::start_with_env(&nats.url(), "otel-trap", &[], &[], &pairs(&otel)).await;
    let client = nats.client("otel-trap").await;
    scale(&client, host.id(), "crash", "crash").await;
    let err = client
        .call("crash", "run", &[])
        .await
        .expect_err("it traps");
    assert!(err.to_string().contains("trap"), "{err}");

    let span = receiver
        .wait_for("the failed invocation's span", |r| {
            r.spans()
                .into_iter()
                .find(|s| s.attr("trellis.component.id") == Some("crash") && s.kind == 2)
        })
        .await;
    assert!(span.is_error(), "{span:?}");
    assert_eq!(span.attr("error.type"), Some("trap"));
    receiver
        .wait_for("the error metric", |r| {
            r.points().into_iter().find(|p| {
                p.name == "trellis.component.invocation.errors"
                    && p.attributes.get("error.type").map(String::as_str) == Some("trap")
                    && p.attributes.get("trellis.component.id").map(String::as_str) == Some("crash")
            })
        })
        .await;
    // What the component printed (its panic message) is a log record in the same trace.
    let log = receiver
        .wait_for("the component's output as a log record", |r| {
            r.logs()
                .into_iter()
                .find(|l| l.body.contains("crash component asked to crash"))
        })
        .await;
    assert_eq!(log.trace_id, span.trace_id, "{log:?}");
    assert_eq!(
        log.attributes.get("component_id").map(String::as_str),
        Some("crash")
    );
    assert_eq!(log.service, "trellis-host");
}

#[tokio::test]
async fn with_observability_off_nothing_is_sent_and_no_exporter_is_built() {
    init_logging();
    let receiver = OtlpReceiver::start().await;
    let nats = NatsServer::start().await;
    // Every OTEL_* variable points at the receiver, but the switch is off.
    let otel: Vec<(String, String)> = env(&receiver, Protocol::Grpc)
        .into_iter()
        .filter(|(k, _)| k != "TRELLIS_OBSERVABILITY")
        .collect();
    let host = HostProcess::start_with_env(&nats.url(), "otel-off", &[], &[], &pairs(&otel)).await;
    let client = nats.client("otel-off").await;
    scale(&client, host.id(), "greeter", "greeter").await;
    for _ in 0..20 {
        client
            .call("greeter", "greet", &[serde_json::json!("x")])
            .await
            .expect("call");
    }
    // Several export intervals (100 ms spans, 300 ms metrics) pass in silence.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        receiver.is_empty(),
        "nothing may arrive: {:?}",
        receiver.spans()
    );
    assert!(
        !host.log().contains("OpenTelemetry export on"),
        "{}",
        host.log()
    );
}

#[tokio::test]
async fn a_request_routed_to_another_host_continues_the_ingress_trace_there() {
    init_logging();
    let receiver = OtlpReceiver::start().await;
    let nats = NatsServer::start().await;
    let otel = receiver.env(Protocol::Grpc);
    let ingress =
        HostProcess::start_with_env(&nats.url(), "otel-hop", &[], &[], &pairs(&otel)).await;
    let worker =
        HostProcess::start_with_env(&nats.url(), "otel-hop", &[], &[], &pairs(&otel)).await;
    let client = nats.client("otel-hop").await;
    scale(&client, worker.id(), "hello", "hello-http").await;
    let base = start_http_server(&client, ingress.id(), "web", &[]).await;
    route(&client, "web", "hello", "hello", Some("/hello"), None).await;
    let resp = reqwest::get(format!("{base}/hello")).await.expect("GET");
    assert_eq!(resp.status().as_u16(), 200);

    let trace = whole_trace(
        &receiver,
        "the routed request's trace",
        |s| s.name == "GET /hello/*",
        |t| {
            has(t, |s| {
                s.attr("trellis.component.id") == Some("hello") && s.kind == 2
            })
        },
    )
    .await;
    let hop = trace
        .iter()
        .find(|s| s.name == "trellis:http/handler")
        .expect("the hop's client span");
    assert_eq!(hop.kind, 3);
    assert_eq!(
        hop.resource.get("service.instance.id").map(String::as_str),
        Some(ingress.id())
    );
    let invocation = trace
        .iter()
        .find(|s| s.attr("trellis.component.id") == Some("hello") && s.kind == 2)
        .expect("invocation");
    assert_eq!(invocation.parent_span_id, hop.span_id, "{trace:#?}");
    assert_eq!(
        invocation
            .resource
            .get("service.instance.id")
            .map(String::as_str),
        Some(worker.id())
    );
}
