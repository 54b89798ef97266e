//! Who decides whether a trace is sampled: the first process that records it. A caller that
//! records nothing sends no `traceparent`, so the callee's own sampler decides; a caller's
//! sampled context is followed.

use trellis_lattice::trace::TraceContext;
use trellis_tests::otlp::pairs;
use trellis_tests::{init_logging, scale_request, HostProcess, NatsServer, OtlpReceiver, Protocol};

#[tokio::test]
async fn a_call_from_a_client_that_records_nothing_is_sampled_by_the_hosts_sampler() {
    init_logging();
    let receiver = OtlpReceiver::start().await;
    let nats = NatsServer::start().await;
    let mut otel = receiver.env(Protocol::Grpc);
    // The host samples none of the traces it starts itself.
    otel.push((
        "OTEL_TRACES_SAMPLER".into(),
        "parentbased_traceidratio".into(),
    ));
    otel.push(("OTEL_TRACES_SAMPLER_ARG".into(), "0".into()));
    let host =
        HostProcess::start_with_env(&nats.url(), "otel-sampling", &[], &[], &pairs(&otel)).await;
    let client = nats.client("otel-sampling").await;
    client
        .scale_component(host.id(), &scale_request("greeter", "greeter", 1))
        .await
        .expect("greeter starts");
    let args = [serde_json::json!("Ada")];

    // This test process records no spans: its calls carry no trace, the host starts one
    // and, sampling none, exports nothing.
    assert_eq!(TraceContext::current(), None);
    for _ in 0..20 {
        client.call("greeter", "greet", &args).await.expect("call");
    }
    // A caller's sampled trace is followed.
    let sampled = TraceContext::new_root();
    client
        .call_in_trace("greeter", "greet", &args, Some(sampled))
        .await
        .expect("call in a sampled trace");
    let ours = sampled.trace_id_hex();
    receiver
        .wait_for("the invocation span of the sampled call", |r| {
            r.spans()
                .iter()
                .any(|s| s.trace_id == ours && s.name.starts_with("greeter "))
                .then_some(())
        })
        .await;
    // Spans leave in the order they end: the unsampled calls' would have arrived first.
    let others: Vec<_> = receiver
        .spans()
        .into_iter()
        .filter(|s| s.trace_id != ours)
        .map(|s| s.name)
        .collect();
    assert!(
        others.is_empty(),
        "spans of traces the host did not sample: {others:?}"
    );
}
