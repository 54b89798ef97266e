//! The host's issuer policy: whose signed components and provider executables it runs.
//!
//! With `--allowed-issuer` set, a component must carry a claim (see `trellis_claims`) signed
//! by one of those issuers, for exactly its bytes, and within its validity; a provider
//! executable the same through its detached `IMAGE.sig`. A start request may also pin one
//! issuer (`ScaleComponent::issuer`, a manifest's `issuer`), which is enforced even on a host
//! without a policy. The checks run on the fetched bytes, before anything is compiled or run.

use std::sync::Arc;
use std::time::Duration;

use trellis_claims::verify::{self, Issuers};
use trellis_claims::{keys, Verified};
use trellis_lattice::image::{ImageRef, ImageSource};
use trellis_lattice::ControlError;

/// Flags of `trellis-host` naming the issuers it trusts.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct IssuerArgs {
    /// An issuer public key (`A…`) whose signed components and provider executables this host
    /// runs (repeatable; env comma-separated). When set, anything unsigned, signed by another
    /// issuer, expired or altered since it was signed is refused at start.
    #[arg(
        long = "allowed-issuer",
        env = "TRELLIS_ALLOWED_ISSUERS",
        value_delimiter = ',',
        value_name = "KEY"
    )]
    pub allowed: Vec<String>,
}

/// The issuers a host trusts; none: no policy (unsigned components run).
#[derive(Clone, Debug, Default)]
pub struct IssuerPolicy {
    allowed: Arc<[String]>,
}

/// Why something was refused, naming the image and the check that failed.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("--allowed-issuer {key:?}: not an issuer public key (A…, as `trellis keys gen issuer` prints)")]
    BadKey { key: String },
    #[error("{image} refused by the issuer policy: {source}")]
    Refused {
        image: String,
        #[source]
        source: trellis_claims::Error,
    },
    #[error("{image}: cannot read its detached claim {sig}: {reason}")]
    Sig {
        image: String,
        sig: String,
        reason: String,
    },
}

impl PolicyError {
    /// Which check failed, when one did.
    pub fn check(&self) -> Option<trellis_claims::Check> {
        match self {
            PolicyError::Refused { source, .. } => Some(source.check()),
            _ => None,
        }
    }
}

impl From<PolicyError> for ControlError {
    fn from(err: PolicyError) -> Self {
        match err {
            PolicyError::Sig { .. } => ControlError::unavailable(err.to_string()),
            _ => ControlError::refused(err.to_string()),
        }
    }
}

impl IssuerPolicy {
    /// A policy allowing `keys`, each checked to be an issuer's public key.
    pub fn new(keys: &[String]) -> Result<Self, PolicyError> {
        let mut allowed = Vec::new();
        for key in keys.iter().map(|k| k.trim()).filter(|k| !k.is_empty()) {
            keys::validate_issuer(key).map_err(|_| PolicyError::BadKey {
                key: key.chars().take(64).collect(),
            })?;
            allowed.push(key.to_string());
        }
        Ok(Self {
            allowed: allowed.into(),
        })
    }

    pub fn from_args(args: &IssuerArgs) -> Result<Self, PolicyError> {
        Self::new(&args.allowed)
    }

    /// Whether the host has a policy (anything it runs must be signed).
    pub fn is_on(&self) -> bool {
        !self.allowed.is_empty()
    }

    pub fn allowed(&self) -> &[String] {
        &self.allowed
    }

    /// The issuers a start may be signed by: the host's, narrowed to the start's pinned
    /// issuer. None: no check at all (no policy, no pin).
    fn issuers(&self, pinned: Option<&str>) -> Option<Vec<String>> {
        match pinned {
            // A pin outside the host's policy leaves no issuer: every claim is refused.
            Some(pin) if self.is_on() => Some(
                self.allowed
                    .iter()
                    .filter(|a| a.as_str() == pin)
                    .cloned()
                    .collect(),
            ),
            Some(pin) => Some(vec![pin.to_string()]),
            None if self.is_on() => Some(self.allowed.to_vec()),
            None => None,
        }
    }

    /// Checks a component's fetched `bytes` (its embedded claim); `Ok(None)` when neither a
    /// policy nor a pin asks for a signature. Hashes the whole image: call off the async
    /// threads for large ones.
    pub fn check_component(
        &self,
        image: &str,
        bytes: &[u8],
        pinned: Option<&str>,
    ) -> Result<Option<Verified>, PolicyError> {
        let Some(issuers) = self.issuers(pinned) else {
            return Ok(None);
        };
        verify::verify_component(bytes, Issuers::OneOf(&issuers), verify::now())
            .map(Some)
            .map_err(|source| PolicyError::Refused {
                image: image.to_string(),
                source,
            })
    }

    /// Checks a provider executable against its detached claim `IMAGE.sig`, fetched from
    /// beside it (a file, or the URL with `.sig` appended); `Ok(None)` without a policy.
    pub async fn check_executable(
        &self,
        reference: &ImageRef,
        bytes: &[u8],
        deadline: Duration,
    ) -> Result<Option<Verified>, PolicyError> {
        let Some(issuers) = self.issuers(None) else {
            return Ok(None);
        };
        let image = reference.location();
        let refused = |source| PolicyError::Refused {
            image: image.clone(),
            source,
        };
        let token = fetch_sig(reference, deadline)
            .await?
            .ok_or_else(|| refused(trellis_claims::Error::UnsignedDetached))?;
        let token = std::str::from_utf8(&token)
            .map_err(|_| refused(trellis_claims::Error::Malformed("the .sig is not text")))?;
        // Hashing a large executable takes a while: not on the async threads.
        let (bytes, token) = (bytes.to_vec(), token.to_string());
        tokio::task::spawn_blocking(move || {
            verify::verify_detached(&bytes, &token, Issuers::OneOf(&issuers), verify::now())
        })
        .await
        .map_err(|_| refused(trellis_claims::Error::Malformed("the check did not finish")))?
        .map(Some)
        .map_err(refused)
    }
}

/// The check of one component start, run on its fetched bytes before they are compiled.
#[derive(Clone, Debug)]
pub struct ComponentCheck {
    policy: IssuerPolicy,
    pinned: Option<String>,
}

impl ComponentCheck {
    /// The check a start needs: none without a policy or a pinned issuer.
    pub fn new(policy: &IssuerPolicy, pinned: Option<&str>) -> Option<Self> {
        (policy.is_on() || pinned.is_some()).then(|| Self {
            policy: policy.clone(),
            pinned: pinned.map(str::to_string),
        })
    }

    /// Runs the check (hashing the whole image: call it off the async threads).
    pub fn run(&self, image: &str, bytes: &[u8]) -> Result<Option<Verified>, PolicyError> {
        let verified = self
            .policy
            .check_component(image, bytes, self.pinned.as_deref())?;
        if let Some(v) = &verified {
            tracing::info!(
                image,
                issuer = %v.claims.issuer,
                subject = %v.claims.subject,
                "component signed by an allowed issuer"
            );
        }
        Ok(verified)
    }

    /// [`Self::run`] on a blocking thread; hands the bytes back when they pass.
    pub async fn run_blocking(&self, image: &str, bytes: Vec<u8>) -> Result<Vec<u8>, PolicyError> {
        let (check, shown) = (self.clone(), image.to_string());
        let (bytes, verdict) = tokio::task::spawn_blocking(move || {
            let verdict = check.run(&shown, &bytes);
            (bytes, verdict)
        })
        .await
        .map_err(|_| PolicyError::Refused {
            image: image.to_string(),
            source: trellis_claims::Error::Malformed("the check did not finish"),
        })?;
        verdict.map(|_| bytes)
    }
}

/// The detached claim beside an executable; `None` when there is none.
async fn fetch_sig(
    reference: &ImageRef,
    deadline: Duration,
) -> Result<Option<Vec<u8>>, PolicyError> {
    let max = trellis_claims::files::MAX_SIG_FILE;
    let image = reference.location();
    let sig = format!("{image}.sig");
    let fail = |reason: String| PolicyError::Sig {
        image: image.clone(),
        sig: sig.clone(),
        reason,
    };
    match &reference.source {
        ImageSource::File(path) => {
            let mut name = path.clone().into_os_string();
            name.push(".sig");
            let read = tokio::time::timeout(
                deadline,
                tokio::task::spawn_blocking(move || {
                    trellis_claims::files::read_regular(std::path::Path::new(&name), max)
                }),
            )
            .await
            .map_err(|_| fail("timed out".into()))?
            .map_err(|e| fail(e.to_string()))?;
            read.map_err(|e| fail(e.to_string()))
        }
        ImageSource::Http(url) => fetch_http_sig(&format!("{url}.sig"), deadline, max)
            .await
            .map_err(fail),
        ImageSource::Builtin(_) => Ok(None),
    }
}

/// The body of `url` (at most `max` bytes); `None` when the server has no such file.
async fn fetch_http_sig(
    url: &str,
    deadline: Duration,
    max: u64,
) -> Result<Option<Vec<u8>>, String> {
    let client = reqwest::Client::builder()
        .connect_timeout(deadline.min(Duration::from_secs(10)))
        .timeout(deadline)
        .build()
        .map_err(|e| e.to_string())?;
    let mut resp = client.get(url).send().await.map_err(|e| e.to_string())?;
    if resp.status() == reqwest::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    if !resp.status().is_success() {
        return Err(format!("server answered {}", resp.status()));
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
        if bytes.len() as u64 + chunk.len() as u64 > max {
            return Err(format!("larger than {max} bytes"));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(Some(bytes))
}

/// Whether the executable `bytes` of the provider image `reference` passed the host's issuer
/// policy: `Ok(Some(claims))` when signed by an allowed issuer (valid, for these bytes),
/// `Ok(None)` when the host has no policy, `Err` naming the failed check otherwise.
pub async fn executable_is_signed_ok(
    policy: &IssuerPolicy,
    reference: &ImageRef,
    bytes: &[u8],
    deadline: Duration,
) -> Result<Option<Verified>, PolicyError> {
    let verified = policy.check_executable(reference, bytes, deadline).await?;
    if let Some(v) = &verified {
        tracing::info!(
            image = %reference.location(),
            issuer = %v.claims.issuer,
            subject = %v.claims.subject,
            "provider executable signed by an allowed issuer"
        );
    }
    Ok(verified)
}

#[cfg(test)]
mod tests {
    use super::*;
    use trellis_claims::keys::{generate, KeyKind};
    use trellis_claims::sign::{sign_component, Details};
    use trellis_claims::Check;

    fn signed(issuer: &nkeys::KeyPair) -> Vec<u8> {
        let wasm = b"\0asm\x0d\x00\x01\x00".to_vec();
        let details = Details {
            issued_at: verify::now(),
            ..Details::default()
        };
        sign_component(&wasm, issuer, &generate(KeyKind::Component), &details)
            .unwrap()
            .0
    }

    #[test]
    fn keys_are_checked_and_pins_narrow_the_policy() {
        assert!(IssuerPolicy::new(&["nope".into()]).is_err());
        let user = generate(KeyKind::User).public_key();
        assert!(IssuerPolicy::new(&[user]).is_err());
        let (a, b) = (generate(KeyKind::Issuer), generate(KeyKind::Issuer));
        let off = IssuerPolicy::default();
        assert!(off
            .check_component("x", b"\0asm\x0d\x00\x01\x00", None)
            .unwrap()
            .is_none());
        let pin_b = off.check_component("x", &signed(&a), Some(&b.public_key()));
        assert_eq!(pin_b.unwrap_err().check(), Some(Check::IssuerNotAllowed));
        assert!(off
            .check_component("x", &signed(&a), Some(&a.public_key()))
            .is_ok());

        let on = IssuerPolicy::new(&[a.public_key()]).unwrap();
        assert!(on
            .check_component("x", &signed(&a), None)
            .unwrap()
            .is_some());
        let err = on.check_component("x", &signed(&b), None).unwrap_err();
        assert_eq!(err.check(), Some(Check::IssuerNotAllowed));
        // A pin to an issuer the host does not allow cannot widen the policy.
        let err = on
            .check_component("x", &signed(&b), Some(&b.public_key()))
            .unwrap_err();
        assert_eq!(err.check(), Some(Check::IssuerNotAllowed));
    }
}
