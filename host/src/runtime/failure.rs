//! What went wrong in an invocation, named: a limit, a trap, bad parameters, or the host.

use trellis_lattice::rpc::RemoteErrorKind;

use super::limits::LimitExceeded;

/// A failed invocation, classified.
#[derive(Debug, Clone)]
pub struct Failure {
    pub kind: RemoteErrorKind,
    pub message: String,
}

impl Failure {
    pub fn time_limit(limit: std::time::Duration) -> Self {
        Self {
            kind: RemoteErrorKind::TimeLimit,
            message: LimitExceeded::Time { limit }.to_string(),
        }
    }

    pub fn stopped() -> Self {
        Self {
            kind: RemoteErrorKind::Unavailable,
            message: LimitExceeded::Stopped.to_string(),
        }
    }
}

/// Names the limit or trap behind a wasmtime error.
pub fn classify(err: &wasmtime::Error, what: &str) -> Failure {
    let limit = err
        .chain()
        .find_map(|e| e.downcast_ref::<LimitExceeded>().copied());
    if let Some(limit) = limit {
        let kind = match limit {
            LimitExceeded::Time { .. } => RemoteErrorKind::TimeLimit,
            LimitExceeded::Memory { .. }
            | LimitExceeded::Budget { .. }
            | LimitExceeded::Table { .. } => RemoteErrorKind::MemoryLimit,
            LimitExceeded::Stopped => RemoteErrorKind::Unavailable,
        };

        return Failure {
            kind,
            message: format!("stopped: {limit}"),
        };
    }
    if let Some(trap) = err.chain().find_map(|e| e.downcast_ref::<wasmtime::Trap>()) {
        return Failure {
            kind: RemoteErrorKind::Trap,
            message: format!("trapped: {trap}"),
        };
    }
    Failure {
        kind: RemoteErrorKind::Internal,
        message: format!("{what}: {err:#}"),
    }
}

/// Names what went wrong in a call through the wRPC value codec.
pub fn classify_call(err: &wrpc_runtime_wasmtime::CallError) -> Failure {
    use wrpc_runtime_wasmtime::CallError as E;
    match err {
        E::Decode(e) => Failure {
            kind: RemoteErrorKind::BadRequest,
            message: format!("parameters do not match the function's types: {e:#}"),
        },
        E::Call(e) => classify(e, "call failed"),
        E::Guest(e) => Failure {
            kind: RemoteErrorKind::Internal,
            message: format!("{e}"),
        },
        other => Failure {
            kind: RemoteErrorKind::Internal,
            message: format!("{other:#}"),
        },
    }
}
