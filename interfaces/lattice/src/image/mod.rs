//! Image references: where a component or provider executable comes from, one rule for hosts,
//! the deployment manager and the CLI.
//!
//! A reference is a path (absolute, or relative to the reader's working directory), a
//! `file:///absolute/path`, an `http://` or `https://` URL, or `builtin://NAME` for a provider
//! compiled into the host; any but the last may be pinned with `@sha256:<64 hex>`, which is
//! enforced when the bytes are read.
//!
//! - [`local`]: reading a local image: regular files only, bounded while reading.

pub mod local;

use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

/// Images larger than this are refused, while reading (Python components are ~18 MB).
pub const MAX_IMAGE_BYTES: u64 = 256 << 20;

/// The scheme of providers compiled into the host.
pub const BUILTIN_SCHEME: &str = "builtin://";

/// Where an image comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageSource {
    /// A plain path (absolute, or relative to the reader's working directory) or `file:///abs`.
    File(PathBuf),
    /// An `http://` or `https://` URL.
    Http(String),
    /// A provider compiled into the host, started by name: `builtin://NAME`.
    Builtin(String),
}

/// A parsed image reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageRef {
    pub source: ImageSource,
    /// The pinned digest as lower-case hex.
    pub sha256: Option<String>,
}

/// Why a reference is not usable; `reason` alone reads well after the caller names the input.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid image reference {image:?}: {reason}")]
pub struct ImageError {
    pub image: String,
    pub reason: String,
}

impl ImageRef {
    pub fn parse(image: &str) -> Result<Self, ImageError> {
        parse(image).map_err(|reason| ImageError {
            image: image.to_string(),
            reason,
        })
    }

    /// The image as given, without the digest.
    pub fn location(&self) -> String {
        match &self.source {
            ImageSource::File(p) => p.display().to_string(),
            ImageSource::Http(u) => u.clone(),
            ImageSource::Builtin(name) => format!("{BUILTIN_SCHEME}{name}"),
        }
    }

    /// Checks `bytes` against the pinned digest, if any; returns their digest (hex).
    pub fn verify(&self, bytes: &[u8]) -> Result<String, DigestMismatch> {
        let actual = digest(bytes);
        match &self.sha256 {
            Some(expected) if *expected != actual => Err(DigestMismatch {
                image: self.location(),
                expected: expected.clone(),
                actual,
            }),
            _ => Ok(actual),
        }
    }
}

/// Bytes that are not what their reference pinned.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("digest mismatch for {image}: expected sha256:{expected}, got sha256:{actual}")]
pub struct DigestMismatch {
    pub image: String,
    pub expected: String,
    pub actual: String,
}

/// The sha256 of `bytes` as lower-case hex.
pub fn digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn parse(image: &str) -> Result<ImageRef, String> {
    if image.is_empty() {
        return Err("is empty".into());
    }
    if let Some(c) = image.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "must not contain whitespace or control characters (found {c:?})"
        ));
    }
    let (location, sha256) = match image.rsplit_once("@sha256:") {
        Some((location, hex)) => {
            if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(format!(
                    "the digest after @sha256: must be 64 hex characters, found {} characters",
                    hex.chars().count()
                ));
            }
            (location, Some(hex.to_ascii_lowercase()))
        }
        None => (image, None),
    };
    if location.is_empty() {
        return Err("has a digest but no location before it".into());
    }
    let source = if let Some(path) = location.strip_prefix("file://") {
        if !path.starts_with('/') || path.len() < 2 {
            return Err("file:// URLs must hold an absolute path (file:///path/to/c.wasm)".into());
        }
        ImageSource::File(PathBuf::from(path))
    } else if location.starts_with("http://") || location.starts_with("https://") {
        let rest = location.split_once("://").map_or("", |(_, r)| r);
        if rest.split('/').next().unwrap_or("").is_empty() {
            return Err("the URL has no host name".into());
        }
        ImageSource::Http(location.to_string())
    } else if let Some(name) = location.strip_prefix(BUILTIN_SCHEME) {
        crate::id::validate_token("builtin provider name", name).map_err(|e| e.to_string())?;
        if sha256.is_some() {
            return Err(
                "a builtin:// image is part of the host and cannot be pinned with a digest".into(),
            );
        }
        ImageSource::Builtin(name.to_string())
    } else if let Some((scheme, _)) = location.split_once("://") {
        return Err(if scheme == "oci" {
            "unsupported scheme oci://; OCI registries are not supported, use a path, file:///abs, http(s):// or builtin://NAME".to_string()
        } else {
            format!(
                "unsupported scheme {scheme}:// (use a path, file:///abs, http(s):// or builtin://NAME)"
            )
        });
    } else if location.contains(':') {
        // `ghcr.io/org/app:0.1.0`: a registry reference, which would otherwise pass as a
        // relative path and fail much later on the host.
        return Err(
            "looks like an OCI registry reference (name:tag), which Trellis does not pull; \
             use a path, file:///abs, http(s):// or builtin://NAME"
                .into(),
        );
    } else {
        ImageSource::File(PathBuf::from(location))
    };
    Ok(ImageRef { source, sha256 })
}

/// A relative path image made absolute against `base_dir` (a manifest's directory) as a
/// `file://` URL, so a host in another working directory finds it. Other images are returned
/// as they are.
pub fn absolutize(image: &str, base_dir: &Path) -> String {
    match ImageRef::parse(image) {
        Ok(ImageRef {
            source: ImageSource::File(path),
            sha256,
        }) if path.is_relative() => {
            let mut out = format!("file://{}", base_dir.join(path).display());
            if let Some(hex) = sha256 {
                out.push_str("@sha256:");
                out.push_str(&hex);
            }
            out
        }
        _ => image.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn accepted_references() {
        let r = ImageRef::parse("./build/c.wasm").unwrap();
        assert_eq!(r.source, ImageSource::File("./build/c.wasm".into()));
        let r =
            ImageRef::parse(&format!("file:///srv/c.wasm@sha256:{}", HEX.to_uppercase())).unwrap();
        assert_eq!(r.source, ImageSource::File("/srv/c.wasm".into()));
        assert_eq!(r.sha256.as_deref(), Some(HEX));
        let r = ImageRef::parse("https://example.com/c.wasm").unwrap();
        assert_eq!(
            r.source,
            ImageSource::Http("https://example.com/c.wasm".into())
        );
        let r = ImageRef::parse("builtin://keyvalue-nats").unwrap();
        assert_eq!(r.source, ImageSource::Builtin("keyvalue-nats".into()));
        assert_eq!(r.location(), "builtin://keyvalue-nats");
    }

    #[test]
    fn refused_references() {
        let cases = [
            ("", "is empty"),
            ("my component.wasm", "whitespace"),
            (" /tmp/c.wasm", "whitespace"),
            ("oci://ghcr.io/x/y:1", "OCI registries are not supported"),
            ("ftp://x/c.wasm", "unsupported scheme ftp://"),
            ("ghcr.io/org/app:0.1.0", "OCI registry reference"),
            ("file://rel/c.wasm", "absolute path"),
            ("c.wasm@sha256:abc", "64 hex characters"),
            ("https:///c.wasm", "no host name"),
            ("builtin://a.b", "builtin provider name"),
        ];
        for (image, want) in cases {
            let err = ImageRef::parse(image).unwrap_err();
            assert!(err.reason.contains(want), "{image:?}: {err}");
            assert!(err.to_string().starts_with("invalid image reference"));
        }
        assert!(ImageRef::parse(&format!("builtin://kv@sha256:{HEX}")).is_err());
    }

    #[test]
    fn digests_are_enforced() {
        let r = ImageRef::parse(&format!("/x.wasm@sha256:{}", digest(b"hello"))).unwrap();
        assert_eq!(r.verify(b"hello").unwrap(), digest(b"hello"));
        let err = r.verify(b"other").unwrap_err();
        assert!(
            err.to_string().contains("digest mismatch for /x.wasm"),
            "{err}"
        );
        let unpinned = ImageRef::parse("/x.wasm").unwrap();
        assert_eq!(unpinned.verify(b"other").unwrap(), digest(b"other"));
    }

    #[test]
    fn absolutizes_relative_paths_only() {
        let base = Path::new("/apps");
        assert_eq!(absolutize("c.wasm", base), "file:///apps/c.wasm");
        assert_eq!(
            absolutize(&format!("b/c.wasm@sha256:{HEX}"), base),
            format!("file:///apps/b/c.wasm@sha256:{HEX}")
        );
        assert_eq!(absolutize("/abs/c.wasm", base), "/abs/c.wasm");
        assert_eq!(absolutize("builtin://kv", base), "builtin://kv");
    }
}
