//! `ExportTraceServiceRequest` bodies written straight from the SDK's `SpanData`: the bytes
//! the OpenTelemetry exporter would send, without building `opentelemetry-proto`'s messages
//! first (an allocation per id, key and text value, dropped again after encoding: the larger
//! part of what a sampled request's export cost).

use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{SpanId, SpanKind, Status};
use opentelemetry::{Array, InstrumentationScope, KeyValue, Value};
use opentelemetry_sdk::trace::SpanData;
use opentelemetry_sdk::Resource;

use crate::otlp::wire;

/// `SpanFlags`: the span says whether its parent is remote, and that it is.
const HAS_IS_REMOTE: u32 = 0x100;
const IS_REMOTE: u32 = 0x200;

/// The encoded `Resource` message of a process, written once.
#[derive(Clone, Debug)]
pub(crate) struct EncodedResource {
    body: Vec<u8>,
    schema_url: Option<String>,
}

impl EncodedResource {
    pub fn new(resource: &Resource) -> Self {
        let mut body = Vec::new();
        for (key, value) in resource.iter() {
            wire::message(&mut body, 1, |b| key_value(b, key.as_str(), value));
        }
        Self {
            body,
            schema_url: resource.schema_url().map(str::to_string),
        }
    }
}

/// The request carrying `spans` under `resource`, grouped by instrumentation scope.
pub(crate) fn encode_request(resource: &EncodedResource, spans: &[SpanData]) -> Vec<u8> {
    // Almost every span of a batch shares one scope (Trellis's own); a component's spans
    // bring theirs. A few scopes per batch: a linear search beats hashing each span's.
    let mut scopes: Vec<(&InstrumentationScope, Vec<&SpanData>)> = Vec::new();
    for span in spans {
        let scope = &span.instrumentation_scope;
        match scopes.iter_mut().find(|(s, _)| *s == scope) {
            Some((_, members)) => members.push(span),
            None => scopes.push((scope, vec![span])),
        }
    }
    let mut buf = Vec::with_capacity(256 * spans.len() + resource.body.len() + 64);
    wire::message(&mut buf, 1, |b| {
        wire::message(b, 1, |b| b.extend_from_slice(&resource.body));
        for (scope, members) in &scopes {
            wire::message(b, 2, |b| {
                wire::message(b, 1, |b| instrumentation_scope(b, scope));
                for span in members {
                    wire::message(b, 2, |b| encode_span(b, span));
                }
                if let Some(url) = scope.schema_url() {
                    wire::bytes(b, 3, url.as_bytes());
                }
            });
        }
        if let Some(url) = &resource.schema_url {
            wire::bytes(b, 3, url.as_bytes());
        }
    });
    buf
}

fn instrumentation_scope(b: &mut Vec<u8>, scope: &InstrumentationScope) {
    wire::bytes(b, 1, scope.name().as_bytes());
    wire::bytes(b, 2, scope.version().unwrap_or_default().as_bytes());
    attributes(b, 3, scope.attributes());
}

fn encode_span(b: &mut Vec<u8>, span: &SpanData) {
    let context = &span.span_context;
    wire::bytes(b, 1, &context.trace_id().to_bytes());
    wire::bytes(b, 2, &context.span_id().to_bytes());
    wire::bytes(b, 3, context.trace_state().header().as_bytes());
    if span.parent_span_id != SpanId::INVALID {
        wire::bytes(b, 4, &span.parent_span_id.to_bytes());
    }
    wire::bytes(b, 5, span.name.as_bytes());
    wire::uint(b, 6, kind(&span.span_kind));
    wire::fixed64(b, 7, nanos(span.start_time));
    wire::fixed64(b, 8, nanos(span.end_time));
    attributes(b, 9, span.attributes.iter());
    wire::uint(b, 10, u64::from(span.dropped_attributes_count));
    for event in span.events.iter() {
        wire::message(b, 11, |b| {
            wire::fixed64(b, 1, nanos(event.timestamp));
            wire::bytes(b, 2, event.name.as_bytes());
            attributes(b, 3, event.attributes.iter());
            wire::uint(b, 4, u64::from(event.dropped_attributes_count));
        });
    }
    wire::uint(b, 12, u64::from(span.events.dropped_count));
    for link in span.links.iter() {
        wire::message(b, 13, |b| {
            let context = &link.span_context;
            wire::bytes(b, 1, &context.trace_id().to_bytes());
            wire::bytes(b, 2, &context.span_id().to_bytes());
            wire::bytes(b, 3, context.trace_state().header().as_bytes());
            attributes(b, 4, link.attributes.iter());
            wire::uint(b, 5, u64::from(link.dropped_attributes_count));
            wire::fixed32(
                b,
                6,
                flags(context.trace_flags().to_u8(), context.is_remote()),
            );
        });
    }
    wire::uint(b, 14, u64::from(span.links.dropped_count));
    wire::message(b, 15, |b| match &span.status {
        Status::Unset => {}
        Status::Ok => wire::uint(b, 3, 1),
        Status::Error { description } => {
            wire::bytes(b, 2, description.as_bytes());
            wire::uint(b, 3, 2);
        }
    });
    wire::fixed32(
        b,
        16,
        flags(context.trace_flags().to_u8(), span.parent_span_is_remote),
    );
}

fn flags(trace_flags: u8, remote: bool) -> u32 {
    u32::from(trace_flags) | HAS_IS_REMOTE | if remote { IS_REMOTE } else { 0 }
}

fn kind(kind: &SpanKind) -> u64 {
    match kind {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    }
}

fn nanos(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn attributes<'a>(b: &mut Vec<u8>, field: u32, kvs: impl Iterator<Item = &'a KeyValue>) {
    for kv in kvs {
        wire::message(b, field, |b| key_value(b, kv.key.as_str(), &kv.value));
    }
}

fn key_value(b: &mut Vec<u8>, key: &str, value: &Value) {
    wire::bytes(b, 1, key.as_bytes());
    wire::message(b, 2, |b| any_value(b, value));
}

/// The `oneof` of an `AnyValue`: a member is written even when it holds its default.
fn any_value(b: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Bool(v) => {
            wire::key(b, 2, wire::VARINT);
            wire::varint(b, u64::from(*v));
        }
        Value::I64(v) => {
            wire::key(b, 3, wire::VARINT);
            wire::varint(b, *v as u64);
        }
        Value::F64(v) => wire::double(b, 4, *v),
        Value::String(v) => wire::bytes_always(b, 1, v.as_str().as_bytes()),
        Value::Array(array) => wire::message(b, 5, |b| match array {
            Array::Bool(vs) => vs.iter().for_each(|v| element(b, Value::Bool(*v))),
            Array::I64(vs) => vs.iter().for_each(|v| element(b, Value::I64(*v))),
            Array::F64(vs) => vs.iter().for_each(|v| element(b, Value::F64(*v))),
            Array::String(vs) => vs.iter().for_each(|v| {
                wire::message(b, 1, |b| wire::bytes_always(b, 1, v.as_str().as_bytes()))
            }),
            // A kind of array added after this was written: sent as its text.
            other => wire::message(b, 1, |b| {
                wire::bytes_always(b, 1, other.to_string().as_bytes())
            }),
        }),
        // A kind of value added after this was written: sent as its text.
        other => wire::bytes_always(b, 1, other.as_str().as_bytes()),
    }
}

fn element(b: &mut Vec<u8>, value: Value) {
    wire::message(b, 1, |b| any_value(b, &value));
}
