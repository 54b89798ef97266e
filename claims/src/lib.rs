//! Signed claims: who vouches for a component or a provider executable, and for which bytes.
//!
//! - [`files`]: bounded reads of regular files, atomic writes.
//! - [`keys`]: the four kinds of keys (issuer `A…`, component `M…`, host `N…`, user `U…`)
//!   and seed files.
//! - [`token`]: a claim as a compact token, `base64url(header).base64url(json).
//!   base64url(signature)`, signed with the issuer's seed.
//! - [`section`]: the claim inside a wasm binary, a custom section named [`SECTION_NAME`],
//!   and the sha256 of the binary without it.
//! - [`sign`]: making claims, embedded or detached (a `.sig` file next to an executable).
//! - [`verify`]: the checks a host runs before it executes anything, each failing with its
//!   own [`Error`] variant ([`Error::check`] names it).

pub mod files;
pub mod keys;
pub mod section;
pub mod sign;
pub mod token;
pub mod verify;

mod error;

pub use error::{Check, Error};
pub use section::SECTION_NAME;
pub use token::Claims;
pub use verify::{verify_component, verify_detached, Issuers, Verified};
