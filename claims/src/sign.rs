//! Making claims: embedded in a wasm binary, or detached for an executable.

use nkeys::KeyPair;

use crate::error::Error;
use crate::token::{self, Claims};
use crate::{section, verify};

/// What the signer says about the bytes, besides their hash.
#[derive(Clone, Debug, Default)]
pub struct Details {
    pub name: Option<String>,
    pub version: Option<String>,
    /// Unix seconds.
    pub issued_at: u64,
    /// Unix seconds; none: does not expire.
    pub expires: Option<u64>,
}

fn claims(issuer: &KeyPair, subject: &KeyPair, hash: String, d: &Details) -> Claims {
    Claims {
        issuer: issuer.public_key(),
        subject: subject.public_key(),
        hash,
        name: d.name.clone(),
        version: d.version.clone(),
        issued_at: d.issued_at,
        expires: d.expires,
    }
}

/// `wasm` with a claim for it embedded, replacing any claim it already had.
pub fn sign_component(
    wasm: &[u8],
    issuer: &KeyPair,
    subject: &KeyPair,
    details: &Details,
) -> Result<(Vec<u8>, Claims), Error> {
    let stripped = section::strip(wasm)?;
    let hash = section::hash_without_claim(&stripped)?;
    let claims = claims(issuer, subject, hash, details);
    let token = token::sign(&claims, issuer)?;
    Ok((section::append(&stripped, &token), claims))
}

/// A detached claim (the `.sig` file's text) for the executable `bytes`.
pub fn sign_detached(
    bytes: &[u8],
    issuer: &KeyPair,
    subject: &KeyPair,
    details: &Details,
) -> Result<(String, Claims), Error> {
    let claims = claims(issuer, subject, verify::sha256(bytes), details);
    let token = token::sign(&claims, issuer)?;
    Ok((format!("{token}\n"), claims))
}
