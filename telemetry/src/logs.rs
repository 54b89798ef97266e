//! The `tracing` layer that turns log events into OpenTelemetry log records: severity from
//! the level, the message as body, other fields as attributes, and the trace and span ids of
//! the nearest recorded span (read from the registry, so no OpenTelemetry context has to be
//! kept current while futures are polled).

use std::time::SystemTime;

use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _, Severity};
use opentelemetry::trace::{SpanId, TraceFlags, TraceId};
use opentelemetry::Key;
use opentelemetry_sdk::logs::{SdkLogRecord, SdkLogger, SdkLoggerProvider};
use tracing::field::{Field, Visit};
use tracing::Subscriber;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use crate::record::Record;

pub(crate) struct LogLayer {
    logger: SdkLogger,
}

impl LogLayer {
    pub fn new(provider: &SdkLoggerProvider) -> Self {
        Self {
            logger: provider.logger("trellis"),
        }
    }
}

fn severity(level: &tracing::Level) -> Severity {
    match *level {
        tracing::Level::TRACE => Severity::Trace,
        tracing::Level::DEBUG => Severity::Debug,
        tracing::Level::INFO => Severity::Info,
        tracing::Level::WARN => Severity::Warn,
        tracing::Level::ERROR => Severity::Error,
    }
}

impl<S> Layer<S> for LogLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        let mut record = self.logger.create_log_record();
        record.set_timestamp(SystemTime::now());
        record.set_severity_number(severity(meta.level()));
        record.set_severity_text(meta.level().as_str());
        record.set_target(meta.target());
        record.set_event_name(meta.name());
        event.record(&mut Fields(&mut record));
        // The span context comes from the registry, whichever layers see the span.
        let trace = ctx.event_span(event).and_then(|span| {
            span.scope()
                .find_map(|s| s.extensions().get::<Record>().map(Record::context))
        });
        if let Some(trace) = trace {
            let flags = if trace.sampled {
                TraceFlags::SAMPLED
            } else {
                TraceFlags::default()
            };
            record.set_trace_context(
                TraceId::from(trace.trace_id),
                SpanId::from(trace.span_id),
                Some(flags),
            );
        }
        self.logger.emit(record);
    }
}

struct Fields<'a>(&'a mut SdkLogRecord);

impl Fields<'_> {
    fn put(&mut self, field: &Field, value: AnyValue) {
        match field.name() {
            "message" => self.0.set_body(value),
            // What `tracing-log` adds to records of the `log` crate: the location is noise,
            // the target is what the record names.
            "log.target" => {
                if let AnyValue::String(target) = value {
                    self.0.set_target(target.to_string());
                }
            }
            name if name.starts_with("log.") => {}
            name => self.0.add_attribute(Key::from_static_str(name), value),
        }
    }
}

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, AnyValue::from(value.to_string()));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, AnyValue::Int(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        let value =
            i64::try_from(value).map_or_else(|_| AnyValue::from(value.to_string()), AnyValue::Int);
        self.put(field, value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, AnyValue::Boolean(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, AnyValue::Double(value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, AnyValue::from(format!("{value:?}")));
    }
}
