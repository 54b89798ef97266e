//! Where the lattice's W3C trace context meets OpenTelemetry's: a server span continues
//! the caller's `traceparent`, an outgoing request carries the current span.

use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState,
};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use trellis_lattice::trace::TraceContext;

/// The OpenTelemetry context whose (remote) span is `parent`.
pub fn remote(parent: &TraceContext) -> opentelemetry::Context {
    let flags = if parent.sampled {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::default()
    };
    let cx = SpanContext::new(
        TraceId::from(parent.trace_id),
        SpanId::from(parent.span_id),
        flags,
        true,
        TraceState::default(),
    );
    opentelemetry::Context::new().with_remote_span_context(cx)
}

/// The lattice context of `span`, if it is recorded.
pub fn of(span: &tracing::Span) -> Option<TraceContext> {
    if span.is_disabled() {
        return None;
    }
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| TraceContext {
        trace_id: u128::from_be_bytes(sc.trace_id().to_bytes()),
        span_id: u64::from_be_bytes(sc.span_id().to_bytes()),
        sampled: sc.is_sampled(),
    })
}

/// Makes `span` continue `incoming` (the caller's context from a message or request) and
/// returns the context to hand on: the span's own when it is recorded, otherwise (export
/// off) a child of the caller's, or a new trace when the caller sent none.
pub fn continue_remote(span: &tracing::Span, incoming: Option<TraceContext>) -> TraceContext {
    if !span.is_disabled() {
        if let Some(parent) = &incoming {
            let _ = span.set_parent(remote(parent));
        }
        if let Some(own) = of(span) {
            return own;
        }
    }
    incoming
        .map(|cx| cx.child())
        .unwrap_or_else(TraceContext::new_root)
}

/// The context of a span opened inside the current one (a client span): its own when
/// recorded, otherwise `fallback`.
pub fn continue_local(span: &tracing::Span, fallback: &TraceContext) -> TraceContext {
    of(span).unwrap_or_else(|| fallback.child())
}

fn current() -> Option<TraceContext> {
    of(&tracing::Span::current())
}

/// Lets requests made by the lattice client carry the current span.
pub(crate) fn install() {
    trellis_lattice::trace::set_current_source(current);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disabled_spans_keep_the_lattice_context() {
        let parent = TraceContext::new_root();
        let next = continue_remote(&tracing::Span::none(), Some(parent));
        assert_eq!(next.trace_id, parent.trace_id);
        assert_ne!(next.span_id, parent.span_id);
        let fresh = continue_remote(&tracing::Span::none(), None);
        assert_ne!(fresh.trace_id, parent.trace_id);
        assert_eq!(
            continue_local(&tracing::Span::none(), &parent).trace_id,
            parent.trace_id
        );
    }

    #[test]
    fn remote_context_round_trips_ids() {
        let parent = TraceContext::new_root();
        let cx = remote(&parent);
        let sc = cx.span().span_context().clone();
        assert!(sc.is_remote() && sc.is_sampled());
        assert_eq!(
            u128::from_be_bytes(sc.trace_id().to_bytes()),
            parent.trace_id
        );
        assert_eq!(u64::from_be_bytes(sc.span_id().to_bytes()), parent.span_id);
    }
}
