//! Spans with no children, no events and no status of their own (waiting for an instance,
//! instantiating), made straight into the export queue: a `tracing` span costs a registry
//! slot, the OpenTelemetry layer's builder and a context activation on every poll of the
//! future it wraps, for a span that only needs its parent, its name and two timestamps.

use std::borrow::Cow;
use std::time::SystemTime;

use opentelemetry::trace::{SpanId, SpanKind, Status};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};
use trellis_lattice::trace::TraceContext;

/// A running leaf span; it ends (and is queued for export) when dropped, so a future
/// dropped half-way (a timeout, a stop) still ends its span.
#[must_use = "a leaf span ends when dropped"]
pub struct Leaf(Option<Open>);

struct Open {
    parent: TraceContext,
    name: &'static str,
    start: SystemTime,
}

/// Opens the leaf span `name` under the span `parent_span` whose context is `parent`. Not
/// recorded (and free) when the parent is not.
pub fn leaf(parent_span: &tracing::Span, parent: &TraceContext, name: &'static str) -> Leaf {
    if parent_span.is_disabled() || !parent.sampled || !crate::switch::enabled() {
        return Leaf(None);
    }
    Leaf(Some(Open {
        parent: *parent,
        name,
        start: SystemTime::now(),
    }))
}

impl Drop for Leaf {
    fn drop(&mut self) {
        let Some(open) = self.0.take() else { return };
        let Some(queue) = crate::foreign::queue() else {
            return;
        };
        let own = open.parent.child();
        queue.push(SpanData {
            span_context: crate::record::sampled_context(own.trace_id, own.span_id),
            parent_span_id: SpanId::from(open.parent.span_id),
            parent_span_is_remote: false,
            span_kind: SpanKind::Internal,
            name: Cow::Borrowed(open.name),
            start_time: open.start,
            end_time: SystemTime::now(),
            attributes: Vec::new(),
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: Status::Unset,
            instrumentation_scope: crate::record::scope().clone(),
        });
    }
}
