//! The checks a host runs before it executes a component or a provider executable, in the
//! order a reply names the first that fails: a claim present and well formed, its signature,
//! its issuer, the bytes' hash, then its validity in time.

use sha2::{Digest as _, Sha256};

use crate::token::{self, Claims};
use crate::{section, Error};

/// A claim issued this far ahead of the host's clock still counts (clocks drift).
pub const CLOCK_SKEW_SECS: u64 = 300;

/// Whose claims count.
#[derive(Clone, Copy, Debug)]
pub enum Issuers<'a> {
    /// Any issuer (for showing a claim, not for running anything).
    Any,
    /// Only these public keys (`A…`).
    OneOf(&'a [String]),
}

/// Claims that passed every check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    pub claims: Claims,
}

/// The result of each check, for showing a claim whatever its state.
#[derive(Debug)]
pub struct Report {
    pub claims: Claims,
    /// The sha256 of the bytes as they are (without a claims section).
    pub actual_hash: String,
    pub signature: Result<(), Error>,
    pub hash: Result<(), Error>,
    pub time: Result<(), Error>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.signature.is_ok() && self.hash.is_ok() && self.time.is_ok()
    }
}

/// Verifies the claim embedded in the wasm binary `bytes` at unix time `now`.
pub fn verify_component(bytes: &[u8], issuers: Issuers<'_>, now: u64) -> Result<Verified, Error> {
    let (token, hash) = section::split(bytes)?;
    verify_token(token.ok_or(Error::Unsigned)?, &hash, issuers, now)
}

/// Verifies the detached claim `token` (the `.sig` file's text) for the executable `bytes`.
pub fn verify_detached(
    bytes: &[u8],
    token: &str,
    issuers: Issuers<'_>,
    now: u64,
) -> Result<Verified, Error> {
    verify_token(token, &sha256(bytes), issuers, now)
}

/// sha256 (hex) of a whole executable: what a detached claim signs.
pub fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn verify_token(token: &str, hash: &str, issuers: Issuers<'_>, now: u64) -> Result<Verified, Error> {
    let claims = token::decode(token)?.verify()?;
    if let Issuers::OneOf(allowed) = issuers {
        if !allowed.iter().any(|a| *a == claims.issuer) {
            return Err(Error::IssuerNotAllowed {
                issuer: claims.issuer,
            });
        }
    }
    check_hash(&claims, hash)?;
    check_time(&claims, now)?;
    Ok(Verified { claims })
}

fn check_hash(claims: &Claims, hash: &str) -> Result<(), Error> {
    if claims.hash.eq_ignore_ascii_case(hash) {
        Ok(())
    } else {
        Err(Error::HashMismatch)
    }
}

fn check_time(claims: &Claims, now: u64) -> Result<(), Error> {
    if let Some(expires) = claims.expires {
        if now >= expires {
            return Err(Error::Expired { expires });
        }
    }
    if claims.issued_at > now.saturating_add(CLOCK_SKEW_SECS) {
        return Err(Error::NotYetValid {
            issued_at: claims.issued_at,
        });
    }
    Ok(())
}

/// Every check of the claim in a wasm binary, each result kept (for `trellis inspect`).
pub fn inspect_component(bytes: &[u8], now: u64) -> Result<Report, Error> {
    let (token, hash) = section::split(bytes)?;
    report(token.ok_or(Error::Unsigned)?, hash, now)
}

/// Every check of a detached claim for an executable.
pub fn inspect_detached(bytes: &[u8], token: &str, now: u64) -> Result<Report, Error> {
    report(token, sha256(bytes), now)
}

fn report(token: &str, actual_hash: String, now: u64) -> Result<Report, Error> {
    let unverified = token::decode(token)?;
    let claims = unverified.claims.clone();
    let signature = unverified.verify().map(drop);
    Ok(Report {
        hash: check_hash(&claims, &actual_hash),
        time: check_time(&claims, now),
        claims,
        actual_hash,
        signature,
    })
}

/// Unix seconds now (0 on a clock before 1970, which makes every claim "not yet valid").
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
