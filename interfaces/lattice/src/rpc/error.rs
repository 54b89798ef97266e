//! How a failed invocation is described: the report a callee sends, and the error a caller
//! sees.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::control::ErrorKind;
use crate::value::ValueError;

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

impl RemoteErrorKind {
    /// The name of the kind as it travels (`trap`, `time_limit`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            RemoteErrorKind::Trap => "trap",
            RemoteErrorKind::TimeLimit => "time_limit",
            RemoteErrorKind::MemoryLimit => "memory_limit",
            RemoteErrorKind::BadRequest => "bad_request",
            RemoteErrorKind::Unavailable => "unavailable",
            RemoteErrorKind::Internal => "internal",
        }
    }
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
    #[error(
        "lattice partitioned: `{target}` is not reachable from here (this NATS server is cut off from the hub: JetStream domain `{domain}` does not answer)"
    )]
    Partitioned { target: String, domain: String },
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

impl CallError {
    /// The kind of control error this failure amounts to.
    pub fn kind(&self) -> ErrorKind {
        match self {
            CallError::NoResponders { .. }
            | CallError::Partitioned { .. }
            | CallError::Timeout { .. }
            | CallError::CalleeLost { .. }
            | CallError::Transport { .. } => ErrorKind::Unavailable,
            CallError::Remote(r) => match r.kind {
                RemoteErrorKind::BadRequest => ErrorKind::Invalid,
                RemoteErrorKind::Unavailable => ErrorKind::Unavailable,
                _ => ErrorKind::Internal,
            },
            CallError::Value(_) => ErrorKind::Invalid,
        }
    }
}
