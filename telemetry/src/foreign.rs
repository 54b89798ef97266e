//! Spans finished by someone else (a component through `wasi:otel/tracing`), exported
//! through this process's span queue under its resource, with the guest's own
//! instrumentation scope.

use std::borrow::Cow;
use std::sync::OnceLock;
use std::time::SystemTime;

use opentelemetry::trace::{SpanId, SpanKind, Status};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};

use crate::processors::SpanQueue;

static QUEUE: OnceLock<SpanQueue> = OnceLock::new();

pub(crate) fn install(queue: SpanQueue) {
    let _ = QUEUE.set(queue);
}

/// The span export queue, once export is on.
pub(crate) fn queue() -> Option<&'static SpanQueue> {
    QUEUE.get()
}

/// The kind of a foreign span.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Client,
    Server,
    Producer,
    Consumer,
    Internal,
}

/// An event of a foreign span: name, time, attributes.
pub type ForeignEvent = (String, SystemTime, Vec<(String, String)>);

/// A finished span handed in from outside the process's own instrumentation.
#[derive(Clone, Debug)]
pub struct ForeignSpan {
    pub trace_id: u128,
    pub span_id: u64,
    /// 0 for none.
    pub parent_span_id: u64,
    pub sampled: bool,
    pub kind: Kind,
    pub name: String,
    pub start: SystemTime,
    pub end: SystemTime,
    pub attributes: Vec<(String, String)>,
    pub events: Vec<ForeignEvent>,
    /// `None` unset, `Some(Ok)` ok, `Some(Err(message))` error.
    pub status: Option<Result<(), String>>,
    pub scope_name: String,
    pub scope_version: Option<String>,
    /// Attributes, events and links the sender had to drop (its limits or ours).
    pub dropped_attributes: u32,
    pub dropped_events: u32,
}

fn kvs(pairs: Vec<(String, String)>) -> Vec<KeyValue> {
    pairs
        .into_iter()
        .map(|(k, v)| KeyValue::new(k, v))
        .collect()
}

/// Queues `span` for export; false when export is off (or the span is unsampled).
pub fn export_span(span: ForeignSpan) -> bool {
    let Some(queue) = queue() else {
        return false;
    };
    if !crate::switch::enabled() || !span.sampled {
        return false;
    }
    let data = SpanData {
        span_context: crate::record::sampled_context(span.trace_id, span.span_id),
        parent_span_id: SpanId::from(span.parent_span_id),
        parent_span_is_remote: false,
        span_kind: match span.kind {
            Kind::Client => SpanKind::Client,
            Kind::Server => SpanKind::Server,
            Kind::Producer => SpanKind::Producer,
            Kind::Consumer => SpanKind::Consumer,
            Kind::Internal => SpanKind::Internal,
        },
        name: Cow::Owned(span.name),
        start_time: span.start,
        end_time: span.end,
        attributes: kvs(span.attributes),
        dropped_attributes_count: span.dropped_attributes,
        events: {
            let mut events = SpanEvents::default();
            events.events = span
                .events
                .into_iter()
                .map(|(name, at, attrs)| opentelemetry::trace::Event::new(name, at, kvs(attrs), 0))
                .collect();
            events.dropped_count = span.dropped_events;
            events
        },
        links: SpanLinks::default(),
        status: match span.status {
            None => Status::Unset,
            Some(Ok(())) => Status::Ok,
            Some(Err(message)) => Status::error(message),
        },
        instrumentation_scope: {
            let b = InstrumentationScope::builder(span.scope_name);
            match span.scope_version {
                Some(v) => b.with_version(v).build(),
                None => b.build(),
            }
        },
    };
    queue.push(data);
    true
}
