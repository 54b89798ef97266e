//! What travels with every call: who calls, over which link, in which trace, and where the
//! callee reports a failure.

use async_nats::HeaderMap;

use super::error::{ErrorReport, RemoteErrorKind};
use crate::trace::TraceContext;

/// Header names used on invocations.
pub mod headers {
    pub use crate::trace::TRACEPARENT;
    /// The id of the calling component (absent for calls from the CLI).
    pub const SOURCE: &str = "trellis-source";
    /// The link the call follows.
    pub const LINK: &str = "trellis-link";
    /// Unique id of this call.
    pub const CALL_ID: &str = "trellis-call-id";
    /// Where the callee publishes an [`super::ErrorReport`] if the call fails.
    pub const ERRORS: &str = "trellis-errors";
}

/// Who is calling and in which trace.
#[derive(Clone, Debug)]
pub struct CallContext {
    /// None: the caller records nothing and sends no `traceparent`.
    pub trace: Option<TraceContext>,
    pub source: Option<String>,
    pub link: Option<String>,
}

impl CallContext {
    /// A call from outside any component (CLI, tests, ingress).
    pub fn external(trace: Option<TraceContext>) -> Self {
        Self {
            trace,
            source: None,
            link: None,
        }
    }
}

/// Builds the headers of an outgoing call.
pub fn call_headers(cx: &CallContext, call_id: &str, errors_subject: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    if let Some(trace) = &cx.trace {
        trace.inject(&mut h);
    }
    if let Some(source) = &cx.source {
        h.insert(headers::SOURCE, source.as_str());
    }
    if let Some(link) = &cx.link {
        h.insert(headers::LINK, link.as_str());
    }
    h.insert(headers::CALL_ID, call_id);
    h.insert(headers::ERRORS, errors_subject);
    h
}

fn header<'a>(h: Option<&'a HeaderMap>, name: &str) -> Option<&'a str> {
    h?.get(name).map(|v| v.as_str())
}

/// What a callee reads from the headers of an incoming call.
#[derive(Clone, Debug, Default)]
pub struct IncomingCall {
    pub call_id: Option<String>,
    pub errors_subject: Option<String>,
    pub source: Option<String>,
    pub link: Option<String>,
    pub trace: Option<TraceContext>,
}

impl IncomingCall {
    pub fn from_headers(h: Option<&HeaderMap>) -> Self {
        let owned = |name| header(h, name).map(str::to_string);
        Self {
            call_id: owned(headers::CALL_ID),
            errors_subject: owned(headers::ERRORS)
                .filter(|s| !s.is_empty() && !s.contains(['*', '>', ' '])),
            source: owned(headers::SOURCE),
            link: owned(headers::LINK),
            trace: TraceContext::from_headers(h),
        }
    }

    /// Tells the caller why its call failed. Callers without an error subject (plain wRPC
    /// clients) only see the result stream close.
    pub async fn report(
        &self,
        nats: &async_nats::Client,
        target: &str,
        host_id: &str,
        kind: RemoteErrorKind,
        message: impl Into<String>,
    ) {
        let (Some(subject), Some(call_id)) = (&self.errors_subject, &self.call_id) else {
            return;
        };
        let report = ErrorReport {
            call_id: call_id.clone(),
            target: target.to_string(),
            host_id: host_id.to_string(),
            kind,
            message: message.into(),
        };
        match serde_json::to_vec(&report) {
            Ok(body) => {
                if let Err(err) = nats.publish(subject.clone(), body.into()).await {
                    tracing::warn!(%err, target, "failed to publish error report");
                }
            }
            Err(err) => tracing::warn!(%err, "failed to encode error report"),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::rpc::call::{call_headers, CallContext};
    use crate::trace::{TraceContext, TRACEPARENT};

    #[test]
    fn a_call_without_a_trace_carries_no_traceparent() {
        let h = call_headers(&CallContext::external(None), "id", "errors");
        assert!(h.get(TRACEPARENT).is_none());
        let trace = TraceContext::new_root();
        let h = call_headers(&CallContext::external(Some(trace)), "id", "errors");
        assert_eq!(TraceContext::from_headers(Some(&h)), Some(trace));
    }
}
