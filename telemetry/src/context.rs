//! Where the lattice's W3C trace context meets OpenTelemetry's: a server span continues
//! the caller's `traceparent`, an outgoing request carries the current span.

use trellis_lattice::trace::TraceContext;

use crate::layer::WithRecord;

/// The lattice context of `span` (or of its nearest recorded ancestor), if it is recorded.
pub fn of(span: &tracing::Span) -> Option<TraceContext> {
    if span.is_disabled() {
        return None;
    }
    let mut found = None;
    WithRecord::nearest(span, |record| found = Some(record.context()));
    found
}

/// Makes `span` continue `incoming` (the caller's context from a message or request) and
/// returns the context to hand on: the span's own when it is recorded, otherwise (export
/// off) a child of the caller's, or a new trace when the caller sent none.
pub fn continue_remote(span: &tracing::Span, incoming: Option<TraceContext>) -> TraceContext {
    if !span.is_disabled() {
        let mut own = None;
        WithRecord::own(span, |record| {
            if let Some(parent) = &incoming {
                record.set_remote_parent(parent, crate::sampling::parent_based());
            }
            own = Some(record.context());
        });
        if let Some(own) = own {
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
}
