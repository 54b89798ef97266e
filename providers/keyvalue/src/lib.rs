//! The `wasi:keyvalue@0.2.0-draft` side shared by Trellis key-value providers: the wRPC
//! bindings, the handlers (each call resolved to its link with the provider SDK), bucket
//! handles and the counter encoding. A backend implements [`Backend`] and runs as
//! `trellis_provider::run_builtin(env, shutdown, KeyValueProvider::new(backend))`.
//!
//! Conventions every backend keeps, so links can move between them:
//! - a bucket handle is the identifier given to `open` ([`handle`]);
//! - counters are stored as decimal text ([`counter`]).

mod backend;
pub mod bindings;
pub mod counter;
pub mod handle;
mod handler;

pub use backend::Backend;
pub use handler::KeyValueProvider;
pub use trellis_provider::HealthReport;

/// The interface's error (`no-such-store`, `access-denied`, `other(string)`).
pub use bindings::exports::wasi::keyvalue::store::Error;
/// A page of `list-keys`.
pub use bindings::exports::wasi::keyvalue::store::KeyResponse;

/// Keys in one `list-keys` page.
pub const PAGE_SIZE: usize = 1000;

#[cfg(feature = "testing")]
pub mod testing;
