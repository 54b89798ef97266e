//! Telemetry from inside a component: a `wasi:logging` record and a span of its own opened
//! with `wasi:otel/tracing`, the way an OpenTelemetry SDK for WASI does it: read the current
//! span context, announce the new span (`on-start`), report it when done (`on-end`).

wit_bindgen::generate!({
    path: ["../../interfaces/wit/logging", "../../interfaces/wit/otel", "wit"],
    world: "trellis:examples/traced",
    generate_all,
});

use wasi::clocks::wall_clock;
use wasi::logging::logging::{log, Level};
use wasi::otel::tracing::{self as otel, SpanContext, SpanData, SpanKind, Status};
use wasi::otel::types::{InstrumentationScope, KeyValue};

struct Traced;

/// A span id from the clock (an example needs no better randomness): splitmix64 of the
/// nanoseconds since the epoch.
fn span_id() -> String {
    let now = wall_clock::now();
    let mut x = now.seconds.wrapping_mul(1_000_000_000).wrapping_add(u64::from(now.nanoseconds));
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    format!("{:016x}", (x ^ (x >> 31)) | 1)
}

impl Guest for Traced {
    fn work(input: String) -> String {
        log(Level::Info, "traced", &format!("reversing {} bytes", input.len()));
        let parent = otel::current_span_context();
        let context = SpanContext {
            trace_id: parent.trace_id.clone(),
            span_id: span_id(),
            trace_flags: parent.trace_flags,
            is_remote: false,
            trace_state: Vec::new(),
        };
        otel::on_start(&context);
        let start = wall_clock::now();
        let output: String = input.chars().rev().collect();
        otel::on_end(&SpanData {
            span_context: context,
            parent_span_id: parent.span_id,
            span_kind: SpanKind::Internal,
            name: "reverse".into(),
            start_time: start,
            end_time: wall_clock::now(),
            attributes: vec![KeyValue {
                key: "input.length".into(),
                value: input.len().to_string(),
            }],
            events: Vec::new(),
            links: Vec::new(),
            status: Status::Ok,
            instrumentation_scope: InstrumentationScope {
                name: "trellis-example-traced".into(),
                version: Some("0.1.0".into()),
                schema_url: None,
                attributes: Vec::new(),
            },
            dropped_attributes: 0,
            dropped_events: 0,
            dropped_links: 0,
        });
        output
    }
}

export!(Traced);
