//! Exit codes: a script can tell what kind of failure a command met without reading stderr.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | failed (anything not below) |
//! | 2 | invalid input (a bad id, flag or manifest; also clap's usage errors) |
//! | 3 | not found (no such host, component, link, config or app) |
//! | 4 | refused (well formed, but the lattice will not do it) |
//! | 5 | conflict (something else holds what was asked for) |
//! | 6 | unavailable (NATS, a host or the manager did not answer) |

use std::process::ExitCode;

use trellis_lattice::{ControlError, ErrorKind};

pub const INVALID: u8 = 2;

/// The code for a kind of failure.
pub fn for_kind(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::Invalid => INVALID,
        ErrorKind::NotFound => 3,
        ErrorKind::Refused => 4,
        ErrorKind::Conflict => 5,
        ErrorKind::Unavailable => 6,
        ErrorKind::Internal => 1,
    }
}

/// The code for an error: the kind of the first lattice error in its chain, else 1.
pub fn code(err: &anyhow::Error) -> ExitCode {
    let kind = err.chain().find_map(|cause| {
        cause
            .downcast_ref::<trellis_lattice::Error>()
            .map(trellis_lattice::Error::kind)
            .or_else(|| cause.downcast_ref::<ControlError>().map(|c| c.kind))
    });
    ExitCode::from(kind.map_or(1, for_kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_the_kind_in_the_chain() {
        let err = anyhow::Error::new(trellis_lattice::Error::control(
            ErrorKind::NotFound,
            "no link",
        ))
        .context("deleting a link");
        assert_eq!(code(&err), ExitCode::from(3));
        assert_eq!(code(&anyhow::anyhow!("other")), ExitCode::from(1));
        let invalid = anyhow::Error::new(trellis_lattice::Error::invalid("id", "a.b", "dots"));
        assert_eq!(code(&invalid), ExitCode::from(INVALID));
    }
}
