//! Invocation over wRPC: headers every call carries, how a callee reports a failure so the
//! caller sees a clear error instead of truncated results, and the caller side ([`Invoker`]).
//!
//! wRPC's NATS transport has no error frame: a callee that fails simply closes the result
//! stream. Trellis adds one without changing the wire: the caller names a per-call error
//! subject in the `trellis-errors` header (under the call's own reply inbox), and a callee
//! that fails publishes an [`ErrorReport`] there before closing. Both arrive in order on
//! the caller's one inbox subscription, so its reader turns the end of results into that
//! report.
//!
//! - [`call`]: headers of a call, and what a callee reads from them ([`IncomingCall`]).
//! - [`error`]: [`ErrorReport`] and [`CallError`].
//! - [`invoker`]: the caller's side ([`Invoker`]); its wire in `transport`.

pub mod call;
pub mod error;
mod invoker;
mod transport;

pub use call::{call_headers, headers, CallContext, IncomingCall, MAX_CALL_DEPTH};
pub use error::{CallError, ErrorReport, RemoteErrorKind};
pub use invoker::{Invocation, Invoker, InvokerConfig};
pub use transport::{CallReader, CallWriter, RemoteFailure};
