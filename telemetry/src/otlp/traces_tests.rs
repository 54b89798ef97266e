//! The encoder's bytes decode to exactly the message the OpenTelemetry exporter builds from
//! the same spans (`opentelemetry-proto`'s own conversion), for every kind of field.

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{
    Event, Link, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{Array, InstrumentationScope, KeyValue, StringValue, Value};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};
use opentelemetry_sdk::Resource;
use prost::Message as _;

use crate::otlp::{encode_request, EncodedResource};

fn at(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(1_764_000_000_000 + ms)
}

fn context(trace: u128, span: u64, remote: bool) -> SpanContext {
    SpanContext::new(
        TraceId::from(trace),
        SpanId::from(span),
        TraceFlags::SAMPLED,
        remote,
        TraceState::from_key_value([("vendor", "x1")]).expect("valid state"),
    )
}

fn span(
    name: &'static str,
    scope: &InstrumentationScope,
    status: Status,
    kind: SpanKind,
) -> SpanData {
    let mut events = SpanEvents::default();
    events.events = vec![
        Event::new("retry", at(5), vec![KeyValue::new("attempt", 2)], 1),
        Event::new(String::from("ünïcode ☃"), at(6), vec![], 0),
    ];
    events.dropped_count = 3;
    let mut links = SpanLinks::default();
    links.links = vec![Link::new(
        context(7, 8, true),
        vec![KeyValue::new("link.kind", "follows")],
        4,
    )];
    links.dropped_count = 1;
    SpanData {
        span_context: context(
            0x0af7_6519_16cd_43dd_8448_eb21_1c80_319c,
            0xb7ad_6b71_6920_3331,
            false,
        ),
        parent_span_id: SpanId::from(0x00f0_67aa_0ba9_02b7),
        parent_span_is_remote: true,
        span_kind: kind,
        name: Cow::Borrowed(name),
        start_time: at(1),
        end_time: at(9),
        attributes: vec![
            KeyValue::new("http.request.method", "GET"),
            KeyValue::new("http.response.status_code", 200),
            KeyValue::new("negative", -5i64),
            KeyValue::new("zero", 0i64),
            KeyValue::new("empty", ""),
            KeyValue::new("flag", false),
            KeyValue::new("ratio", 0.25),
            KeyValue::new("long", "x".repeat(300)),
            KeyValue::new("bools", Value::Array(Array::Bool(vec![true, false]))),
            KeyValue::new("ints", Value::Array(Array::I64(vec![1, -1, 0]))),
            KeyValue::new("floats", Value::Array(Array::F64(vec![1.5]))),
            KeyValue::new(
                "strings",
                Value::Array(Array::String(vec![
                    StringValue::from("a"),
                    StringValue::from(""),
                ])),
            ),
        ],
        dropped_attributes_count: 2,
        events,
        links,
        status,
        instrumentation_scope: scope.clone(),
    }
}

/// Resource attributes come from a hash map: compared in one order.
fn sorted(mut request: Vec<ResourceSpans>) -> Vec<ResourceSpans> {
    for rs in &mut request {
        if let Some(r) = rs.resource.as_mut() {
            r.attributes.sort_by(|a, b| a.key.cmp(&b.key));
        }
    }
    request
}

#[test]
fn the_bytes_are_the_message_the_sdk_exporter_builds() {
    let ours = InstrumentationScope::builder("trellis").build();
    let guest = InstrumentationScope::builder("guest-sdk")
        .with_version("1.2.3")
        .with_schema_url("https://opentelemetry.io/schemas/1.26.0")
        .with_attributes([KeyValue::new("lib", "rust")])
        .build();
    let mut root = span("GET /*", &ours, Status::Ok, SpanKind::Server);
    root.parent_span_id = SpanId::INVALID;
    root.parent_span_is_remote = false;
    let spans = vec![
        root,
        span(
            "counter increment",
            &ours,
            Status::error("trap: unreachable"),
            SpanKind::Internal,
        ),
        span("guest work", &guest, Status::Unset, SpanKind::Client),
        span("queue wait", &ours, Status::Unset, SpanKind::Producer),
        span("consume", &guest, Status::error(""), SpanKind::Consumer),
    ];
    let resource = Resource::builder_empty()
        .with_schema_url(
            [
                KeyValue::new("service.name", "trellis-host"),
                KeyValue::new("trellis.lattice", "default"),
                KeyValue::new("host.arch", "x86_64"),
            ],
            "https://opentelemetry.io/schemas/1.26.0",
        )
        .build();

    let bytes = encode_request(&EncodedResource::new(&resource), &spans);
    let decoded = ExportTraceServiceRequest::decode(bytes.as_slice()).expect("valid protobuf");
    let expected = ExportTraceServiceRequest {
        resource_spans: group_spans_by_resource_and_scope(
            spans,
            &ResourceAttributesWithSchema::from(&resource),
        ),
    };
    assert_eq!(
        sorted(decoded.resource_spans),
        sorted(expected.resource_spans)
    );
}

#[test]
fn an_empty_batch_is_a_request_with_only_the_resource() {
    let resource = Resource::builder_empty()
        .with_attributes([KeyValue::new("service.name", "trellis")])
        .build();
    let bytes = encode_request(&EncodedResource::new(&resource), &[]);
    let decoded = ExportTraceServiceRequest::decode(bytes.as_slice()).expect("valid protobuf");
    assert_eq!(decoded.resource_spans.len(), 1);
    assert!(decoded.resource_spans[0].scope_spans.is_empty());
}
