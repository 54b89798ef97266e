//! Errors of the protocol crate.

use std::time::Duration;

/// What went wrong talking to the lattice.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// User input that cannot be used: names the input, the value and the problem.
    #[error("invalid {what} {value:?}: {reason}")]
    Invalid {
        what: String,
        value: String,
        reason: String,
    },
    /// A host or manager answered with `ok: false`.
    #[error("{0}")]
    Refused(String),
    /// Nobody answered within the time allowed.
    #[error("timed out after {} waiting for {what}", humantime::format_duration(*after))]
    Timeout { what: String, after: Duration },
    /// Nobody subscribes to the subject at all.
    #[error("no responders: {0}")]
    NoResponders(String),
    /// A message that does not parse as the type the protocol says.
    #[error("malformed {what}: {reason}")]
    Malformed { what: String, reason: String },
    /// A remote invocation failed.
    #[error(transparent)]
    Call(#[from] crate::rpc::CallError),
    /// The NATS connection failed.
    #[error("NATS: {0}")]
    Nats(String),
}

impl Error {
    pub fn invalid(what: &str, value: &str, reason: impl Into<String>) -> Self {
        Error::Invalid {
            what: what.to_string(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }

    pub fn malformed(what: &str, reason: impl std::fmt::Display) -> Self {
        Error::Malformed {
            what: what.to_string(),
            reason: reason.to_string(),
        }
    }

    pub fn nats(err: impl std::fmt::Display) -> Self {
        Error::Nats(err.to_string())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
