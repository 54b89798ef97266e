//! Invocation over wRPC: headers every call carries, how a callee reports a failure so the
//! caller sees a clear error instead of truncated results, and the caller side ([`Invoker`]).
//!
//! wRPC's NATS transport has no error frame: a callee that fails simply closes the result
//! stream. Trellis adds one without changing the wire: the caller names a per-call error
//! subject in the `trellis-errors` header (under the call's own reply inbox), and a callee
//! that fails publishes an [`ErrorReport`] there before closing. Both arrive in order on
//! the caller's one inbox subscription, so its reader turns the end of results into that
//! report.

mod invoker;
mod transport;

use std::time::Duration;

use async_nats::HeaderMap;
use serde::{Deserialize, Serialize};

pub use invoker::{Invocation, Invoker, InvokerConfig};
pub use transport::{invocation_subject, CallReader, CallWriter, RemoteFailure, PROTOCOL};

use crate::trace::TraceContext;
use crate::value::ValueError;

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
    pub trace: TraceContext,
    pub source: Option<String>,
    pub link: Option<String>,
}

impl CallContext {
    /// A call from outside any component (CLI, tests, ingress).
    pub fn external(trace: TraceContext) -> Self {
        Self {
            trace,
            source: None,
            link: None,
        }
    }
}

/// Why a callee failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemoteErrorKind {
    /// The component trapped.
    Trap,
    /// The invocation hit its execution-time limit.
    TimeLimit,
    /// The invocation hit its memory limit.
    MemoryLimit,
    /// Parameters did not decode as the function's types.
    BadRequest,
    /// The component is being stopped or the host is shutting down.
    Unavailable,
    /// Anything else (host-side failure, provider failure).
    Internal,
}

/// Published by a callee on the caller's error subject when an invocation fails.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReport {
    pub call_id: String,
    /// The component or provider that failed.
    pub target: String,
    /// The host (or provider process) that ran it.
    pub host_id: String,
    pub kind: RemoteErrorKind,
    pub message: String,
}

impl std::fmt::Display for ErrorReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` (on host {}) {}",
            self.target, self.host_id, self.message
        )
    }
}

/// A failed invocation, as the caller sees it.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("no running instance of `{target}` answers in lattice `{lattice}`")]
    NoResponders { target: String, lattice: String },
    #[error("`{target}` did not answer within {}", humantime::format_duration(*after))]
    Timeout { target: String, after: Duration },
    #[error("{0}")]
    Remote(ErrorReport),
    #[error("the host running `{target}` disappeared during the call")]
    CalleeLost { target: String },
    #[error("call to `{target}` failed: {message}")]
    Transport { target: String, message: String },
    #[error(transparent)]
    Value(#[from] ValueError),
}

impl CallError {
    pub(crate) fn transport(target: &str, err: impl std::fmt::Display) -> Self {
        CallError::Transport {
            target: target.to_string(),
            message: format!("{err:#}"),
        }
    }
}

/// Builds the headers of an outgoing call.
pub fn call_headers(cx: &CallContext, call_id: &str, errors_subject: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    cx.trace.inject(&mut h);
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
