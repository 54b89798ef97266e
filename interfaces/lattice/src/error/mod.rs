//! Errors of the protocol crate, and the typed error every control reply carries
//! ([`control`]).

pub mod control;

use std::time::Duration;

pub use control::{ControlError, ErrorKind};

use crate::rpc::error::CallError;

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
    #[error(transparent)]
    Control(#[from] ControlError),
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
    Call(#[from] CallError),
    /// The NATS connection failed.
    #[error("NATS: {0}")]
    Nats(String),
}

impl Error {
    /// Invalid input: `what` names it, `value` is shown (cut short when long: a hostile
    /// value is not repeated back whole), `reason` says what is wrong.
    pub fn invalid(what: &str, value: &str, reason: impl Into<String>) -> Self {
        Error::Invalid {
            what: what.to_string(),
            value: shorten(value),
            reason: reason.into(),
        }
    }

    /// A message that does not parse; `reason` (a parser's error, which may quote the input)
    /// is kept within bounds by [`bounded`].
    pub fn malformed(what: &str, reason: impl std::fmt::Display) -> Self {
        Error::Malformed {
            what: what.to_string(),
            reason: bounded(&reason.to_string()),
        }
    }

    pub fn nats(err: impl std::fmt::Display) -> Self {
        Error::Nats(err.to_string())
    }

    /// A refusal of the given kind, as a server would answer it.
    pub fn control(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error::Control(ControlError::new(kind, message))
    }

    /// The kind a caller branches on.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Invalid { .. } | Error::Malformed { .. } => ErrorKind::Invalid,
            Error::Control(c) => c.kind,
            Error::Timeout { .. } | Error::NoResponders(_) | Error::Nats(_) => {
                ErrorKind::Unavailable
            }
            Error::Call(c) => c.kind(),
        }
    }
}

impl From<Error> for ControlError {
    fn from(err: Error) -> Self {
        match err {
            Error::Control(c) => c,
            other => ControlError::new(other.kind(), other.to_string()),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_survive_conversion() {
        let e = Error::invalid("component id", "a.b", "no dots");
        assert_eq!(ControlError::from(e).kind, ErrorKind::Invalid);
        let e = Error::control(ErrorKind::NotFound, "no such link");
        let c = ControlError::from(e);
        assert_eq!(c, ControlError::not_found("no such link"));
        assert_eq!(
            ControlError::from(Error::nats("down")).kind,
            ErrorKind::Unavailable
        );
        let json = serde_json::to_value(ErrorKind::NotFound).unwrap();
        assert_eq!(json, "not_found");
    }
}

/// Characters of an invalid value shown in an error.
const SHOWN: usize = 64;
/// Characters of a parser's error message kept in all.
const MESSAGE_MAX: usize = 1024;

/// A parser's error message with every quoted part (`"..."`, `` `...` ``) longer than a few
/// dozen characters cut short, and the whole cut at [`MESSAGE_MAX`]: serde quotes the
/// offending input (`invalid type: string "…1 MB…", expected u32`), which a hostile request
/// must not get repeated back or into logs.
pub fn bounded(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(MESSAGE_MAX + 64));
    let mut rest = message;
    while let Some(open) = rest.find(['"', '`']) {
        let quote = rest[open..].chars().next().unwrap_or('"');
        out.push_str(&rest[..=open]);
        let inner_start = open + 1;
        let close = quoted_end(&rest[inner_start..], quote).map(|i| inner_start + i);
        let inner = &rest[inner_start..close.unwrap_or(rest.len())];
        out.push_str(&shorten(inner));
        match close {
            Some(c) => {
                out.push(quote);
                rest = &rest[c + 1..];
            }
            None => rest = "",
        }
        if out.len() > MESSAGE_MAX {
            break;
        }
    }
    out.push_str(rest);
    if out.chars().count() > MESSAGE_MAX {
        let cut: String = out.chars().take(MESSAGE_MAX).collect();
        return format!("{cut}…");
    }
    out
}

/// Where the quoted part that starts `text` ends (`"` skips escaped characters).
fn quoted_end(text: &str, quote: char) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        match c {
            '\\' if quote == '"' && !escaped => escaped = true,
            c if c == quote && !escaped => return Some(i),
            _ => escaped = false,
        }
    }
    None
}

/// `value`, or its beginning and how long it was: how an error shows what it was given.
pub fn shorten(value: &str) -> String {
    let count = value.chars().count();
    if count <= SHOWN {
        return value.to_string();
    }
    let head: String = value.chars().take(SHOWN).collect();
    format!("{head}… ({count} characters)")
}

#[cfg(test)]
mod shorten_tests {
    use super::*;

    #[test]
    fn parser_errors_quote_only_the_beginning_of_the_input() {
        let long = "y".repeat(1 << 20);
        let err = serde_json::from_str::<u32>(&format!("\"{long}\"")).unwrap_err();
        let text = Error::malformed("scale", err).to_string();
        assert!(text.len() < 300, "{text}");
        assert!(text.contains("expected u32"), "{text}");
        assert!(text.contains("(1048576 characters)"), "{text}");
        let escaped = bounded(r#"a "b\"c" and `d`"#);
        assert_eq!(escaped, r#"a "b\"c" and `d`"#);
        assert_eq!(bounded("no quote \"ends"), "no quote \"ends");
    }

    #[test]
    fn long_values_are_not_repeated_whole() {
        let e = Error::invalid("component id", &"x".repeat(10_000), "too long");
        let text = e.to_string();
        assert!(text.len() < 200, "{text}");
        assert!(text.contains("(10000 characters)"), "{text}");
    }
}
