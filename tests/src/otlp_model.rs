//! What the test OTLP receiver keeps of each span, log record and metric point.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::trace::v1::Span;

use crate::otlp::{attributes, value};

/// One received span.
#[derive(Clone, Debug)]
pub struct ReceivedSpan {
    /// `service.name` of its resource.
    pub service: String,
    pub resource: BTreeMap<String, String>,
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    pub name: String,
    /// OTLP span kind: 1 internal, 2 server, 3 client.
    pub kind: i32,
    /// OTLP status code: 0 unset, 1 ok, 2 error.
    pub status_code: i32,
    pub status_message: String,
    pub attributes: BTreeMap<String, String>,
    pub events: Vec<String>,
    /// Start and end, nanoseconds since the Unix epoch.
    pub start_ns: u64,
    pub end_ns: u64,
}

impl ReceivedSpan {
    pub(crate) fn from_proto(resource: &BTreeMap<String, String>, span: Span) -> Self {
        let status = span.status.unwrap_or_default();
        Self {
            service: resource.get("service.name").cloned().unwrap_or_default(),
            resource: resource.clone(),
            trace_id: hex::encode(&span.trace_id),
            span_id: hex::encode(&span.span_id),
            parent_span_id: hex::encode(&span.parent_span_id),
            name: span.name,
            kind: span.kind,
            status_code: status.code,
            status_message: status.message,
            attributes: attributes(&span.attributes),
            events: span.events.into_iter().map(|e| e.name).collect(),
            start_ns: span.start_time_unix_nano,
            end_ns: span.end_time_unix_nano,
        }
    }

    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }

    pub fn is_error(&self) -> bool {
        self.status_code == 2
    }
}

/// One received log record.
#[derive(Clone, Debug)]
pub struct ReceivedLog {
    pub service: String,
    pub resource: BTreeMap<String, String>,
    /// Empty when the record carries no trace.
    pub trace_id: String,
    pub span_id: String,
    pub severity_text: String,
    pub severity_number: i32,
    pub body: String,
    pub attributes: BTreeMap<String, String>,
}

impl ReceivedLog {
    pub(crate) fn from_proto(resource: &BTreeMap<String, String>, record: LogRecord) -> Self {
        Self {
            service: resource.get("service.name").cloned().unwrap_or_default(),
            resource: resource.clone(),
            trace_id: hex::encode(&record.trace_id),
            span_id: hex::encode(&record.span_id),
            severity_text: record.severity_text,
            severity_number: record.severity_number,
            body: value(&record.body),
            attributes: attributes(&record.attributes),
        }
    }
}

/// One received metric data point (a histogram's is its count).
#[derive(Clone, Debug)]
pub struct Point {
    pub service: String,
    pub name: String,
    pub attributes: BTreeMap<String, String>,
    pub value: f64,
}

/// Checks that every span of `trace_id` but the root has its parent in the trace; returns
/// the spans, or what is wrong.
pub fn connected_trace(
    spans: &[ReceivedSpan],
    trace_id: &str,
) -> Result<Vec<ReceivedSpan>, String> {
    let of_trace: Vec<ReceivedSpan> = spans
        .iter()
        .filter(|s| s.trace_id == trace_id)
        .cloned()
        .collect();
    let roots: Vec<&ReceivedSpan> = of_trace
        .iter()
        .filter(|s| s.parent_span_id.is_empty())
        .collect();
    if roots.len() != 1 {
        return Err(format!("{} roots in trace {trace_id}", roots.len()));
    }
    for s in &of_trace {
        if !s.parent_span_id.is_empty() && !of_trace.iter().any(|p| p.span_id == s.parent_span_id) {
            return Err(format!(
                "span {} ({}) has its parent {} missing",
                s.name, s.service, s.parent_span_id
            ));
        }
        if s.span_id == s.parent_span_id {
            return Err(format!("span {} is its own parent", s.name));
        }
    }
    Ok(of_trace)
}
