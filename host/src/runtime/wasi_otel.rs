//! `wasi:otel@0.2.0-rc.2`, served by the host so a component built with an OpenTelemetry SDK
//! for WASI nests its own spans under the invocation's span: `current-span-context` answers
//! the invocation's context (or the component's innermost open span), `on-end` exports the
//! component's finished spans through the host's queue, `logs.on-emit` becomes a log record
//! in the invocation's span. A component cannot write into another trace (spans and records
//! of any other trace id are dropped), and what one invocation may send is bounded.
//! `metrics.export` is refused with a reason: aggregated guest metrics would need a raw
//! OTLP path the host does not have (use span attributes, logs or the host's own metrics).

use std::time::{Duration, SystemTime};

use trellis_lattice::trace::TraceContext;
use trellis_telemetry::foreign::{ForeignSpan, Kind};
use wasmtime::component::{HasSelf, Linker};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../interfaces/wit/otel",
        world: "wasi:otel/imports",
    });
}

use bindings::wasi::clocks::wall_clock::Datetime;
use bindings::wasi::otel::types::KeyValue;
use bindings::wasi::otel::{logs, metrics, tracing as otel_tracing, types};

/// Spans one invocation may export.
pub const MAX_SPANS: u32 = 1000;
/// Log records one invocation may emit through `wasi:otel/logs`.
pub const MAX_RECORDS: u32 = 1000;
const MAX_OPEN: usize = 256;
const MAX_NAME: usize = 256;
const MAX_ATTRIBUTES: usize = 128;
const MAX_EVENTS: usize = 128;
const MAX_VALUE: usize = 4096;

/// One instance's view of its invocation's trace.
pub struct OtelCtx {
    component_id: std::sync::Arc<str>,
    span: tracing::Span,
    trace: TraceContext,
    /// Spans the component started and has not ended, innermost last.
    open: Vec<otel_tracing::SpanContext>,
    spans: u32,
    records: u32,
    dropped: u32,
}

impl OtelCtx {
    pub fn new(
        component_id: std::sync::Arc<str>,
        span: tracing::Span,
        trace: TraceContext,
    ) -> Self {
        Self {
            component_id,
            span,
            trace,
            open: Vec::new(),
            spans: 0,
            records: 0,
            dropped: 0,
        }
    }

    fn invocation_context(&self) -> otel_tracing::SpanContext {
        otel_tracing::SpanContext {
            trace_id: format!("{:032x}", self.trace.trace_id),
            span_id: format!("{:016x}", self.trace.span_id),
            trace_flags: if self.trace.sampled {
                otel_tracing::TraceFlags::SAMPLED
            } else {
                otel_tracing::TraceFlags::empty()
            },
            is_remote: false,
            trace_state: Vec::new(),
        }
    }

    fn ours(&self, trace_id: &str) -> bool {
        u128::from_str_radix(trace_id, 16).ok() == Some(self.trace.trace_id)
    }
}

fn cut(s: String, max: usize) -> String {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

fn time(d: &Datetime) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::new(d.seconds, d.nanoseconds.min(999_999_999))
}

/// Attributes within the limits, and how many were dropped.
fn attributes(kvs: Vec<KeyValue>) -> (Vec<(String, String)>, u32) {
    let dropped = kvs.len().saturating_sub(MAX_ATTRIBUTES) as u32;
    let kept = kvs
        .into_iter()
        .take(MAX_ATTRIBUTES)
        .map(|kv| (cut(kv.key, MAX_NAME), cut(kv.value, MAX_VALUE)))
        .collect();
    (kept, dropped)
}

impl types::Host for OtelCtx {}

impl otel_tracing::Host for OtelCtx {
    fn on_start(&mut self, context: otel_tracing::SpanContext) {
        if self.ours(&context.trace_id) && self.open.len() < MAX_OPEN {
            self.open.push(context);
        }
    }

    fn on_end(&mut self, data: otel_tracing::SpanData) {
        let sc = &data.span_context;
        self.open.retain(|o| o.span_id != sc.span_id);
        let span_id = u64::from_str_radix(&sc.span_id, 16)
            .ok()
            .filter(|id| *id != 0);
        let parent = if data.parent_span_id.is_empty() {
            Some(0)
        } else {
            u64::from_str_radix(&data.parent_span_id, 16).ok()
        };
        let (Some(span_id), Some(parent)) = (span_id, parent) else {
            self.dropped += 1;
            return;
        };
        if !self.ours(&sc.trace_id) || self.spans >= MAX_SPANS || parent == 0 {
            // Another trace, over the limit, or a root: a component's spans belong under
            // the invocation that ran it.
            self.dropped += 1;
            return;
        }
        self.spans += 1;
        let (attrs, dropped_attributes) = attributes(data.attributes);
        let dropped_events =
            data.events.len().saturating_sub(MAX_EVENTS) as u32 + data.dropped_events;
        let events = data
            .events
            .into_iter()
            .take(MAX_EVENTS)
            .map(|e| {
                (
                    cut(e.name, MAX_NAME),
                    time(&e.time),
                    attributes(e.attributes).0,
                )
            })
            .collect();
        let mut attributes = attrs;
        attributes.push(("trellis.component.id".into(), self.component_id.to_string()));
        trellis_telemetry::foreign::export_span(ForeignSpan {
            trace_id: self.trace.trace_id,
            span_id,
            parent_span_id: parent,
            sampled: sc.trace_flags.contains(otel_tracing::TraceFlags::SAMPLED),
            kind: match data.span_kind {
                otel_tracing::SpanKind::Client => Kind::Client,
                otel_tracing::SpanKind::Server => Kind::Server,
                otel_tracing::SpanKind::Producer => Kind::Producer,
                otel_tracing::SpanKind::Consumer => Kind::Consumer,
                otel_tracing::SpanKind::Internal => Kind::Internal,
            },
            name: cut(data.name, MAX_NAME),
            start: time(&data.start_time),
            end: time(&data.end_time),
            attributes,
            events,
            status: match data.status {
                otel_tracing::Status::Unset => None,
                otel_tracing::Status::Ok => Some(Ok(())),
                otel_tracing::Status::Error(m) => Some(Err(cut(m, MAX_VALUE))),
            },
            scope_name: cut(data.instrumentation_scope.name, MAX_NAME),
            scope_version: data.instrumentation_scope.version.map(|v| cut(v, MAX_NAME)),
            dropped_attributes: dropped_attributes + data.dropped_attributes,
            dropped_events,
        });
    }

    fn current_span_context(&mut self) -> otel_tracing::SpanContext {
        self.open
            .last()
            .cloned()
            .unwrap_or_else(|| self.invocation_context())
    }
}

impl logs::Host for OtelCtx {
    fn on_emit(&mut self, data: logs::LogRecord) {
        if self.records >= MAX_RECORDS {
            self.dropped += 1;
            return;
        }
        self.records += 1;
        let body = cut(data.body.unwrap_or_default(), MAX_VALUE);
        let component_id = &*self.component_id;
        let severity = data.severity_number.unwrap_or(9);
        self.span.in_scope(|| match severity {
            0..=4 => tracing::trace!(target: "trellis::component", component_id, "{body}"),
            5..=8 => tracing::debug!(target: "trellis::component", component_id, "{body}"),
            9..=12 => tracing::info!(target: "trellis::component", component_id, "{body}"),
            13..=16 => tracing::warn!(target: "trellis::component", component_id, "{body}"),
            _ => tracing::error!(target: "trellis::component", component_id, "{body}"),
        });
    }
}

impl metrics::Host for OtelCtx {
    fn export(&mut self, _metrics: metrics::ResourceMetrics) -> Result<(), metrics::Error> {
        Err("trellis: metrics from components are not exported; record them as span attributes or logs".into())
    }
}

impl Drop for OtelCtx {
    fn drop(&mut self) {
        if self.dropped > 0 {
            let attrs = crate::observe::component_attributes(&self.component_id, None);
            crate::observe::logs_dropped(&attrs, u64::from(self.dropped));
        }
    }
}

/// Adds the `wasi:otel` interfaces to `linker` (not `wasi:clocks`, which WASI already
/// provides).
pub fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut OtelCtx,
) -> wasmtime::Result<()> {
    types::add_to_linker::<T, HasSelf<OtelCtx>>(linker, get)?;
    otel_tracing::add_to_linker::<T, HasSelf<OtelCtx>>(linker, get)?;
    logs::add_to_linker::<T, HasSelf<OtelCtx>>(linker, get)?;
    metrics::add_to_linker::<T, HasSelf<OtelCtx>>(linker, get)
}

#[cfg(test)]
mod tests {
    use super::*;
    use otel_tracing::Host as _;

    fn span(trace_id: String, parent: &str) -> otel_tracing::SpanData {
        let at = Datetime {
            seconds: 1,
            nanoseconds: 0,
        };
        otel_tracing::SpanData {
            span_context: otel_tracing::SpanContext {
                trace_id,
                span_id: "00000000000000aa".into(),
                trace_flags: otel_tracing::TraceFlags::SAMPLED,
                is_remote: false,
                trace_state: Vec::new(),
            },
            parent_span_id: parent.into(),
            span_kind: otel_tracing::SpanKind::Internal,
            name: "x".repeat(10 * MAX_NAME),
            start_time: at,
            end_time: at,
            attributes: Vec::new(),
            events: Vec::new(),
            links: Vec::new(),
            status: otel_tracing::Status::Unset,
            instrumentation_scope: types::InstrumentationScope {
                name: "t".into(),
                version: None,
                schema_url: None,
                attributes: Vec::new(),
            },
            dropped_attributes: 0,
            dropped_events: 0,
            dropped_links: 0,
        }
    }

    #[test]
    fn a_component_cannot_write_into_another_trace_or_start_one() {
        let trace = TraceContext::new_root();
        let mut ctx = OtelCtx::new("c".into(), tracing::Span::none(), trace);
        let current = ctx.current_span_context();
        assert_eq!(current.trace_id, format!("{:032x}", trace.trace_id));
        assert_eq!(current.span_id, format!("{:016x}", trace.span_id));
        let other = format!("{:032x}", trace.trace_id ^ 1);
        ctx.on_end(span(other, &current.span_id));
        ctx.on_end(span(current.trace_id.clone(), ""));
        ctx.on_end(span(current.trace_id.clone(), "not-hex"));
        assert_eq!((ctx.dropped, ctx.spans), (3, 0));
        ctx.on_end(span(current.trace_id.clone(), &current.span_id));
        assert_eq!((ctx.dropped, ctx.spans), (3, 1));
    }
}
