//! The `tracing` layer that records the spans Trellis names (target `trellis`) and queues
//! them for export when they close. It keeps each span's [`Record`] in the registry's
//! extensions and does nothing when a span is entered or left: a request's spans cost their
//! creation, their fields and their end, not a context switch on every poll of the futures
//! they wrap (what a general-purpose OpenTelemetry bridge pays to keep the SDK's current
//! context in step).

use std::any::TypeId;
use std::marker::PhantomData;

use tracing::span::{Attributes, Id, Record as Values};
use tracing::{Dispatch, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::{LookupSpan, SpanRef};
use tracing_subscriber::Layer;
use trellis_lattice::trace::TraceContext;

use crate::processors::SpanQueue;
use crate::record::{scope, Record};

/// Reaches the record of a span from outside the subscriber (a `tracing::Span` handle):
/// found by downcasting the dispatcher, as the layer's type is not nameable there.
#[derive(Clone, Copy)]
pub(crate) struct WithRecord(Reach);

/// Runs a closure on the record of a span (`true`: or of its nearest recorded ancestor).
type Reach = fn(&Dispatch, &Id, bool, &mut dyn FnMut(&mut Record));

impl WithRecord {
    /// Runs `f` on the record of `span` or, when it has none (a span of another target),
    /// of its nearest recorded ancestor.
    pub fn nearest(span: &tracing::Span, f: impl FnMut(&mut Record)) {
        Self::find(span, true, f)
    }

    /// Runs `f` on the record of `span` itself, if it has one.
    pub fn own(span: &tracing::Span, f: impl FnMut(&mut Record)) {
        Self::find(span, false, f)
    }

    fn find(span: &tracing::Span, nearest: bool, mut f: impl FnMut(&mut Record)) {
        span.with_subscriber(|(id, dispatch)| {
            if let Some(with) = dispatch.downcast_ref::<WithRecord>() {
                (with.0)(dispatch, id, nearest, &mut f);
            }
        });
    }
}

pub(crate) struct SpanLayer<S> {
    queue: SpanQueue,
    with_record: WithRecord,
    _subscriber: PhantomData<fn(S)>,
}

impl<S> SpanLayer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    pub fn new(queue: SpanQueue) -> Self {
        Self {
            queue,
            with_record: WithRecord(with_record::<S>),
            _subscriber: PhantomData,
        }
    }
}

fn with_record<S>(dispatch: &Dispatch, id: &Id, nearest: bool, f: &mut dyn FnMut(&mut Record))
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let Some(subscriber) = dispatch.downcast_ref::<S>() else {
        return;
    };
    let Some(span) = subscriber.span(id) else {
        return;
    };
    let mut candidates = span.scope().take(if nearest { usize::MAX } else { 1 });
    if let Some(found) = candidates.find(|s| s.extensions().get::<Record>().is_some()) {
        if let Some(record) = found.extensions_mut().get_mut::<Record>() {
            f(record);
        }
    }
}

/// The context of the nearest recorded span from `span` up.
fn nearest_context<S>(span: Option<SpanRef<'_, S>>) -> Option<TraceContext>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    span?
        .scope()
        .find_map(|s| s.extensions().get::<Record>().map(Record::context))
}

impl<S> Layer<S> for SpanLayer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let parent = if attrs.is_root() {
            None
        } else if let Some(parent) = attrs.parent() {
            nearest_context(ctx.span(parent))
        } else {
            nearest_context(ctx.lookup_current())
        };
        let mut record = Record::new(attrs.metadata().name(), parent);
        record.record(attrs);
        span.extensions_mut().insert(record);
    }

    fn on_record(&self, id: &Id, values: &Values<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            if let Some(record) = span.extensions_mut().get_mut::<Record>() {
                record.record(values);
            }
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.event_span(event) else {
            return;
        };
        for s in span.scope() {
            if let Some(record) = s.extensions_mut().get_mut::<Record>() {
                if record.sampled {
                    record.add_event(event);
                }
                return;
            }
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let Some(record) = span.extensions_mut().remove::<Record>() else {
            return;
        };
        if record.sampled {
            self.queue.push(record.finish(scope()));
        }
    }

    unsafe fn downcast_raw(&self, id: TypeId) -> Option<*const ()> {
        if id == TypeId::of::<Self>() {
            Some(self as *const Self as *const ())
        } else if id == TypeId::of::<WithRecord>() {
            Some(&self.with_record as *const WithRecord as *const ())
        } else {
            None
        }
    }
}
