//! The checks a host runs before it executes a component or a provider executable, in the
//! order a reply names the first that fails: a claim present and well formed, its signature,
//! its issuer, the bytes' hash, then its validity in time.

use sha2::{Digest as _, Sha256};

use crate::error::Error;
use crate::section;
use crate::token::{self, Claims};

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

fn verify_token(
    token: &str,
    hash: &str,
    issuers: Issuers<'_>,
    now: u64,
) -> Result<Verified, Error> {
    let claims = token::decode(token)?.verify()?;
    if let Issuers::OneOf(allowed) = issuers {
        if !allowed.contains(&claims.issuer) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Check;
    use crate::keys::{generate, KeyKind};
    use crate::sign::{sign_component, sign_detached, Details};

    const NOW: u64 = 1_800_000_000;

    fn wasm() -> Vec<u8> {
        let mut b = b"\0asm\x0d\x00\x01\x00".to_vec();
        // A custom section standing in for code: name "code", four bytes of body.
        b.extend_from_slice(&[0, 9, 4, b'c', b'o', b'd', b'e', 1, 2, 3, 4]);
        b
    }

    fn details(expires: Option<u64>) -> Details {
        Details {
            name: Some("greeter".into()),
            version: Some("0.1.0".into()),
            issued_at: NOW - 10,
            expires,
        }
    }

    fn signed(issuer: &nkeys::KeyPair, expires: Option<u64>) -> Vec<u8> {
        let subject = generate(KeyKind::Component);
        sign_component(&wasm(), issuer, &subject, &details(expires))
            .unwrap()
            .0
    }

    fn check(r: Result<Verified, Error>) -> Check {
        r.map(drop).unwrap_err().check()
    }

    #[test]
    fn each_failed_check_is_named() {
        let issuer = generate(KeyKind::Issuer);
        let allowed = [issuer.public_key()];
        let ok = Issuers::OneOf(&allowed);
        let good = signed(&issuer, Some(NOW + 60));
        let v = verify_component(&good, ok, NOW).unwrap();
        assert_eq!(v.claims.name.as_deref(), Some("greeter"));
        assert_eq!(v.claims.hash, section::hash_without_claim(&wasm()).unwrap());

        assert_eq!(check(verify_component(&wasm(), ok, NOW)), Check::Unsigned);
        let other = signed(&generate(KeyKind::Issuer), None);
        assert_eq!(
            check(verify_component(&other, ok, NOW)),
            Check::IssuerNotAllowed
        );
        assert!(verify_component(&other, Issuers::Any, NOW).is_ok());
        assert_eq!(check(verify_component(&good, ok, NOW + 60)), Check::Expired);
        assert_eq!(
            check(verify_component(&good, ok, NOW - 10 - CLOCK_SKEW_SECS - 1)),
            Check::NotYetValid
        );
        assert_eq!(
            check(verify_component(b"\0asm\x0d\x00\x01", ok, NOW)),
            Check::Malformed
        );
    }

    #[test]
    fn tampering_is_caught() {
        let issuer = generate(KeyKind::Issuer);
        let allowed = [issuer.public_key()];
        let ok = Issuers::OneOf(&allowed);
        let good = signed(&issuer, None);

        // A byte of "code" changed: the claim no longer describes these bytes.
        let mut code = good.clone();
        code[18] ^= 0xff;
        assert_eq!(check(verify_component(&code, ok, NOW)), Check::HashMismatch);

        // The claim's JSON edited in place (its expiry pushed out): the signature fails.
        let (token, _) = section::split(&good).unwrap();
        let token = token.unwrap().to_string();
        let parts: Vec<&str> = token.split('.').collect();
        let mut claims = token::decode(&token).unwrap().claims;
        claims.expires = Some(u64::MAX);
        use base64::Engine as _;
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(&claims).unwrap());
        let forged = format!("{}.{payload}.{}", parts[0], parts[2]);
        let edited = section::append(&section::strip(&good).unwrap(), &forged);
        assert_eq!(
            check(verify_component(&edited, ok, NOW)),
            Check::BadSignature
        );

        // Re-signing replaces the claim rather than adding a second one.
        let resigned = signed_again(&good, &issuer);
        assert!(verify_component(&resigned, ok, NOW).is_ok());
        assert_eq!(resigned.len(), good.len());
    }

    fn signed_again(bytes: &[u8], issuer: &nkeys::KeyPair) -> Vec<u8> {
        let subject = generate(KeyKind::Component);
        sign_component(bytes, issuer, &subject, &details(None))
            .unwrap()
            .0
    }

    #[test]
    fn detached_claims_cover_the_whole_executable() {
        let issuer = generate(KeyKind::Issuer);
        let allowed = [issuer.public_key()];
        let ok = Issuers::OneOf(&allowed);
        let exe = b"\x7fELF pretend executable".to_vec();
        let subject = generate(KeyKind::Component);
        let (sig, _) = sign_detached(&exe, &issuer, &subject, &details(None)).unwrap();
        assert!(verify_detached(&exe, &sig, ok, NOW).is_ok());
        let mut changed = exe.clone();
        changed[5] ^= 1;
        assert_eq!(
            check(verify_detached(&changed, &sig, ok, NOW)),
            Check::HashMismatch
        );
        assert_eq!(
            check(verify_detached(&exe, "garbage", ok, NOW)),
            Check::Malformed
        );
        let report = inspect_detached(&changed, &sig, NOW).unwrap();
        assert!(report.signature.is_ok() && report.hash.is_err() && !report.ok());
    }
}
