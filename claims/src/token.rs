//! A claim as a compact token: `base64url(header).base64url(claims json).base64url(sig)`,
//! the signature being the issuer's Ed25519 signature over the first two parts as text.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use nkeys::KeyPair;
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::keys::KeyKind;

/// A token is a few hundred bytes; a larger one is not ours.
pub const MAX_TOKEN: usize = crate::files::MAX_SIG_FILE as usize - 2;
const ALG: &str = "ed25519-nkey";
const TYP: &str = "trellis-claims";

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    typ: String,
}

/// What an issuer vouches for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    /// The issuer's public key (`A…`), whose seed signed the token.
    #[serde(rename = "iss")]
    pub issuer: String,
    /// The component's (or executable's) own key (`M…`).
    #[serde(rename = "sub")]
    pub subject: String,
    /// sha256 (hex) of the bytes signed for: a component without its claims section, or a
    /// whole executable.
    pub hash: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Unix seconds.
    #[serde(rename = "iat")]
    pub issued_at: u64,
    /// Unix seconds; none: does not expire.
    #[serde(rename = "exp", default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<u64>,
}

impl Claims {
    fn check_shape(&self) -> Result<(), Error> {
        if !KeyKind::Issuer.is_public_key(&self.issuer) {
            return Err(Error::Malformed(
                "the issuer is not an issuer public key (A…)",
            ));
        }
        if !KeyKind::Component.is_public_key(&self.subject) {
            return Err(Error::Malformed(
                "the subject is not a component public key (M…)",
            ));
        }
        if self.hash.len() != 64 || !self.hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::Malformed("the hash is not a sha256 in hex"));
        }
        Ok(())
    }
}

/// Signs `claims` with `issuer`, whose public key must be `claims.issuer`.
pub fn sign(claims: &Claims, issuer: &KeyPair) -> Result<String, Error> {
    if issuer.public_key() != claims.issuer {
        return Err(Error::Seed("the signing key is not the claim's issuer"));
    }
    claims.check_shape()?;
    let header = Header {
        alg: ALG.into(),
        typ: TYP.into(),
    };
    let header = serde_json::to_vec(&header).map_err(|_| Error::Malformed("header"))?;
    let payload = serde_json::to_vec(claims).map_err(|_| Error::Malformed("claims"))?;
    let signed = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let sig = issuer
        .sign(signed.as_bytes())
        .map_err(|_| Error::Seed("the issuer key cannot sign (no seed)"))?;
    Ok(format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig)))
}

/// The parts of a token, its claims read but not yet trusted.
pub struct Unverified<'a> {
    pub claims: Claims,
    signed: &'a str,
    signature: Vec<u8>,
}

/// Reads `token` without checking its signature (for showing it, and to learn the issuer).
pub fn decode(token: &str) -> Result<Unverified<'_>, Error> {
    if token.len() > MAX_TOKEN {
        return Err(Error::Malformed("the token is too large"));
    }
    let token = token.trim();
    let (signed, sig) = token
        .rsplit_once('.')
        .ok_or(Error::Malformed("not a token (header.claims.signature)"))?;
    let (header, payload) = signed
        .split_once('.')
        .ok_or(Error::Malformed("not a token (header.claims.signature)"))?;
    let part = |p: &str, what| {
        URL_SAFE_NO_PAD
            .decode(p)
            .map_err(|_| Error::Malformed(what))
    };
    let header: Header = serde_json::from_slice(&part(header, "the header is not base64url")?)
        .map_err(|_| Error::Malformed("the header is not a token header"))?;
    if header.alg != ALG || header.typ != TYP {
        return Err(Error::Malformed(
            "the header names another algorithm or type",
        ));
    }
    let claims: Claims = serde_json::from_slice(&part(payload, "the claims are not base64url")?)
        .map_err(|_| Error::Malformed("the claims are not valid claims JSON"))?;
    claims.check_shape()?;
    let signature = part(sig, "the signature is not base64url")?;
    Ok(Unverified {
        claims,
        signed,
        signature,
    })
}

impl Unverified<'_> {
    /// The claims, once the signature is checked against the issuer's key they name.
    pub fn verify(self) -> Result<Claims, Error> {
        let bad = || Error::BadSignature {
            issuer: self.claims.issuer.clone(),
        };
        let key = KeyPair::from_public_key(&self.claims.issuer).map_err(|_| bad())?;
        key.verify(self.signed.as_bytes(), &self.signature)
            .map_err(|_| bad())?;
        Ok(self.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::generate;

    pub(crate) fn claims(issuer: &KeyPair) -> Claims {
        Claims {
            issuer: issuer.public_key(),
            subject: generate(KeyKind::Component).public_key(),
            hash: "ab".repeat(32),
            name: Some("greeter".into()),
            version: Some("1.0.0".into()),
            issued_at: 1_700_000_000,
            expires: None,
        }
    }

    #[test]
    fn a_signed_token_verifies_and_an_edited_one_does_not() {
        let issuer = generate(KeyKind::Issuer);
        let c = claims(&issuer);
        let token = sign(&c, &issuer).unwrap();
        assert_eq!(decode(&token).unwrap().verify().unwrap(), c);

        // Another name in the claims JSON, the rest kept: the signature no longer matches.
        let parts: Vec<&str> = token.split('.').collect();
        let mut edited = c.clone();
        edited.name = Some("evil".into());
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&edited).unwrap());
        let forged = format!("{}.{payload}.{}", parts[0], parts[2]);
        assert!(matches!(
            decode(&forged).unwrap().verify(),
            Err(Error::BadSignature { .. })
        ));
    }

    #[test]
    fn only_the_issuer_signs_and_garbage_is_malformed() {
        let issuer = generate(KeyKind::Issuer);
        let user = generate(KeyKind::User);
        assert!(sign(&claims(&issuer), &generate(KeyKind::Issuer)).is_err());
        let mut c = claims(&issuer);
        c.issuer = user.public_key();
        assert!(sign(&c, &user).is_err());
        for bad in ["", "a.b", "a.b.c", "x.y.z.w", &"a".repeat(MAX_TOKEN + 1)] {
            assert!(matches!(decode(bad), Err(Error::Malformed(_))), "{bad:.20}");
        }
    }
}
