//! One span being recorded: its place in the trace, its name, kind and attributes as the
//! `tracing` fields give them (`otel.name`, `otel.kind`, `otel.status_code`,
//! `otel.status_description`; every other field is an attribute), and the events logged
//! inside it. It becomes the SDK's `SpanData` when it closes, without an SDK span behind it.

use std::borrow::Cow;
use std::sync::OnceLock;
use std::time::SystemTime;

use opentelemetry::trace::{
    Event, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, Key, KeyValue, StringValue, Value};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};
use rand::Rng as _;
use tracing::field::{Field, Visit};
use trellis_lattice::trace::TraceContext;

/// At most this many attributes and events per span (the SDK's default span limits); more
/// are counted as dropped.
const MAX_ATTRIBUTES: usize = 128;
const MAX_EVENTS: usize = 128;

#[derive(Debug)]
pub(crate) struct Record {
    pub trace_id: u128,
    pub span_id: u64,
    /// 0 for a root span.
    pub parent_span_id: u64,
    pub parent_remote: bool,
    pub sampled: bool,
    name: Cow<'static, str>,
    kind: SpanKind,
    start: SystemTime,
    attributes: Vec<KeyValue>,
    dropped_attributes: u32,
    events: Vec<Event>,
    dropped_events: u32,
    error: bool,
    ok: bool,
    description: Option<String>,
}

fn new_span_id() -> u64 {
    rand::thread_rng().gen_range(1..=u64::MAX)
}

impl Record {
    /// A span under `parent` (another recorded span), or the root of a new trace.
    pub fn new(name: &'static str, parent: Option<TraceContext>) -> Self {
        let (trace_id, parent_span_id, sampled) = match parent {
            Some(p) => (p.trace_id, p.span_id, p.sampled),
            None => (rand::thread_rng().gen_range(1..=u128::MAX), 0, true),
        };
        Self {
            trace_id,
            span_id: new_span_id(),
            parent_span_id,
            parent_remote: false,
            sampled,
            name: Cow::Borrowed(name),
            kind: SpanKind::Internal,
            start: SystemTime::now(),
            attributes: Vec::new(),
            dropped_attributes: 0,
            events: Vec::new(),
            dropped_events: 0,
            error: false,
            ok: false,
            description: None,
        }
    }

    /// Where it stands, as handed on to the calls made inside it.
    pub fn context(&self) -> TraceContext {
        TraceContext {
            trace_id: self.trace_id,
            span_id: self.span_id,
            sampled: self.sampled,
        }
    }

    /// Makes it continue the caller's span `parent` (from a message or a request).
    pub fn set_remote_parent(&mut self, parent: &TraceContext, parent_based: bool) {
        self.trace_id = parent.trace_id;
        self.parent_span_id = parent.span_id;
        self.parent_remote = true;
        if parent_based {
            self.sampled = parent.sampled;
        }
    }

    /// Records `fields` (at creation or later through `Span::record`).
    pub fn record(&mut self, fields: &impl RecordFields) {
        fields.record(&mut Fields(self));
    }

    /// Adds an event named by its message, with its other fields as attributes. An error
    /// logged inside a span marks it failed unless its status says otherwise.
    pub fn add_event(&mut self, event: &tracing::Event<'_>) {
        if *event.metadata().level() == tracing::Level::ERROR && !self.ok {
            self.error = true;
        }
        if self.events.len() >= MAX_EVENTS {
            self.dropped_events = self.dropped_events.saturating_add(1);
            return;
        }
        let mut visitor = EventFields::default();
        event.record(&mut visitor);
        let name = visitor
            .message
            .map(Cow::Owned)
            .unwrap_or(Cow::Borrowed(event.metadata().name()));
        let mut attributes = visitor.attributes;
        attributes.push(KeyValue::new("level", event.metadata().level().as_str()));
        self.events
            .push(Event::new(name, SystemTime::now(), attributes, 0));
    }

    fn attribute(&mut self, key: &'static str, value: Value) {
        if let Some(existing) = self.attributes.iter_mut().find(|kv| kv.key.as_str() == key) {
            existing.value = value;
        } else if self.attributes.len() < MAX_ATTRIBUTES {
            self.attributes
                .push(KeyValue::new(Key::from_static_str(key), value));
        } else {
            self.dropped_attributes = self.dropped_attributes.saturating_add(1);
        }
    }

    /// Takes an `otel.*` field; hands any other field back as an attribute's text.
    fn special<'t>(&mut self, key: &'static str, text: Cow<'t, str>) -> Option<Cow<'t, str>> {
        match key {
            "otel.name" => self.name = Cow::Owned(text.into_owned()),
            "otel.kind" => self.kind = kind(&text),
            "otel.status_code" => {
                self.error = text.eq_ignore_ascii_case("error");
                self.ok = text.eq_ignore_ascii_case("ok");
            }
            "otel.status_description" => self.description = Some(text.into_owned()),
            _ => return Some(text),
        }
        None
    }

    /// What the exporter sends, once the span ended now.
    pub fn finish(self, scope: &InstrumentationScope) -> SpanData {
        let status = if self.error {
            Status::error(self.description.unwrap_or_default())
        } else if self.ok {
            Status::Ok
        } else {
            Status::Unset
        };
        let mut events = SpanEvents::default();
        events.events = self.events;
        events.dropped_count = self.dropped_events;
        SpanData {
            span_context: sampled_context(self.trace_id, self.span_id),
            parent_span_id: SpanId::from(self.parent_span_id),
            parent_span_is_remote: self.parent_remote,
            span_kind: self.kind,
            name: self.name,
            start_time: self.start,
            end_time: SystemTime::now(),
            attributes: self.attributes,
            dropped_attributes_count: self.dropped_attributes,
            events,
            links: SpanLinks::default(),
            status,
            instrumentation_scope: scope.clone(),
        }
    }
}

/// The context of an exported (so sampled, local) span.
pub(crate) fn sampled_context(trace_id: u128, span_id: u64) -> SpanContext {
    SpanContext::new(
        TraceId::from(trace_id),
        SpanId::from(span_id),
        TraceFlags::SAMPLED,
        false,
        TraceState::default(),
    )
}

/// The scope every span of Trellis's own is exported under.
pub(crate) fn scope() -> &'static InstrumentationScope {
    static SCOPE: OnceLock<InstrumentationScope> = OnceLock::new();
    SCOPE.get_or_init(|| InstrumentationScope::builder("trellis").build())
}

fn kind(text: &str) -> SpanKind {
    match text {
        "server" => SpanKind::Server,
        "client" => SpanKind::Client,
        "producer" => SpanKind::Producer,
        "consumer" => SpanKind::Consumer,
        _ => SpanKind::Internal,
    }
}

/// Both `tracing::span::Attributes` and `tracing::span::Record` hand their values to a
/// visitor.
pub(crate) trait RecordFields {
    fn record(&self, visitor: &mut dyn Visit);
}

impl RecordFields for tracing::span::Attributes<'_> {
    fn record(&self, visitor: &mut dyn Visit) {
        self.record(visitor)
    }
}

impl RecordFields for tracing::span::Record<'_> {
    fn record(&self, visitor: &mut dyn Visit) {
        self.record(visitor)
    }
}

struct Fields<'a>(&'a mut Record);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if let Some(text) = self.0.special(field.name(), Cow::Borrowed(value)) {
            self.0
                .attribute(field.name(), StringValue::from(text.into_owned()).into());
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.attribute(field.name(), Value::I64(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.attribute(field.name(), int(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.attribute(field.name(), Value::Bool(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.attribute(field.name(), Value::F64(value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        if let Some(text) = self.0.special(field.name(), Cow::Owned(text)) {
            self.0
                .attribute(field.name(), StringValue::from(text.into_owned()).into());
        }
    }
}

/// A `u64` as an OpenTelemetry integer, or as text when it does not fit.
fn int(value: u64) -> Value {
    i64::try_from(value).map_or_else(|_| Value::from(value.to_string()), Value::I64)
}

/// An event's message and its other fields.
#[derive(Default)]
struct EventFields {
    message: Option<String>,
    attributes: Vec<KeyValue>,
}

impl EventFields {
    fn push(&mut self, field: &Field, value: Value) {
        if self.attributes.len() < MAX_ATTRIBUTES {
            self.attributes
                .push(KeyValue::new(Key::from_static_str(field.name()), value));
        }
    }
}

impl Visit for EventFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = Some(value.to_string());
        } else {
            self.push(field, Value::from(value.to_string()));
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field, Value::I64(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push(field, int(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field, Value::Bool(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.push(field, Value::F64(value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        if field.name() == "message" {
            self.message = Some(text);
        } else {
            self.push(field, Value::from(text));
        }
    }
}
