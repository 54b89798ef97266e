//! What travels with every call: who calls, over which link, in which trace, how deep in a
//! chain of calls and with how much of the caller's time left, and where the callee reports a
//! failure.

use std::time::Duration;

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
    /// How many calls through links led to this one (absent: none, a call from outside).
    pub const DEPTH: &str = "trellis-depth";
    /// Milliseconds the calling instance had left of its time limit when it called.
    pub const BUDGET: &str = "trellis-budget-ms";
}

/// Calls through links one call may lead to in a row: a component that calls itself through
/// a link (directly or round a ring of links) is stopped there with a clear error, instead
/// of taking every instance of the lattice until the time limits end it.
pub const MAX_CALL_DEPTH: u32 = 16;

/// Who is calling and in which trace.
#[derive(Clone, Debug)]
pub struct CallContext {
    /// None: the caller records nothing and sends no `traceparent`.
    pub trace: Option<TraceContext>,
    pub source: Option<String>,
    pub link: Option<String>,
    /// Calls through links before this one (0 for a call from outside any component).
    pub depth: u32,
    /// What the caller has left of its time limit (none: no limit of its own).
    pub budget: Option<Duration>,
}

impl CallContext {
    /// A call from outside any component (CLI, tests, ingress).
    pub fn external(trace: Option<TraceContext>) -> Self {
        Self {
            trace,
            source: None,
            link: None,
            depth: 0,
            budget: None,
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
    if cx.depth > 0 {
        h.insert(headers::DEPTH, cx.depth.to_string().as_str());
    }
    if let Some(budget) = cx.budget {
        let ms = u64::try_from(budget.as_millis()).unwrap_or(u64::MAX);
        h.insert(headers::BUDGET, ms.to_string().as_str());
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
    /// Calls through links before this one. A value that is not a number counts as the
    /// deepest allowed: a forged header cannot buy a longer chain.
    pub depth: u32,
    /// What the caller had left of its time limit when it called.
    pub budget: Option<Duration>,
}

impl IncomingCall {
    /// Whether this call is one too many in a chain of calls through links.
    pub fn too_deep(&self) -> bool {
        self.depth >= MAX_CALL_DEPTH
    }

    pub fn from_headers(h: Option<&HeaderMap>) -> Self {
        let owned = |name| header(h, name).map(str::to_string);
        let depth =
            header(h, headers::DEPTH).map_or(0, |v| v.trim().parse().unwrap_or(MAX_CALL_DEPTH));
        let budget = header(h, headers::BUDGET)
            .map(|v| Duration::from_millis(v.trim().parse().unwrap_or(0)));
        Self {
            depth,
            budget,
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
    use std::time::Duration;

    use crate::rpc::call::{call_headers, headers, CallContext, IncomingCall, MAX_CALL_DEPTH};
    use crate::trace::{TraceContext, TRACEPARENT};

    #[test]
    fn depth_and_budget_travel_and_forged_ones_do_not_help() {
        let mut cx = CallContext::external(None);
        let h = call_headers(&cx, "id", "errors");
        let incoming = IncomingCall::from_headers(Some(&h));
        assert_eq!((incoming.depth, incoming.budget), (0, None));
        cx.depth = 3;
        cx.budget = Some(Duration::from_millis(1500));
        let incoming = IncomingCall::from_headers(Some(&call_headers(&cx, "id", "errors")));
        assert_eq!(incoming.depth, 3);
        assert_eq!(incoming.budget, Some(Duration::from_millis(1500)));
        assert!(!incoming.too_deep());
        let mut forged = call_headers(&cx, "id", "errors");
        forged.insert(headers::DEPTH, "-1");
        forged.insert(headers::BUDGET, "lots");
        let incoming = IncomingCall::from_headers(Some(&forged));
        assert_eq!(incoming.depth, MAX_CALL_DEPTH);
        assert!(incoming.too_deep());
        assert_eq!(incoming.budget, Some(Duration::ZERO));
    }

    #[test]
    fn a_call_without_a_trace_carries_no_traceparent() {
        let h = call_headers(&CallContext::external(None), "id", "errors");
        assert!(h.get(TRACEPARENT).is_none());
        let trace = TraceContext::new_root();
        let h = call_headers(&CallContext::external(Some(trace)), "id", "errors");
        assert_eq!(TraceContext::from_headers(Some(&h)), Some(trace));
    }
}
