//! Where component bytes come from: a local path, `file://`, `http://` or `https://`, each
//! optionally pinned with `@sha256:<hex>`, which is enforced.

use std::path::PathBuf;
use std::time::Duration;

use sha2::{Digest as _, Sha256};

/// Components larger than this are refused (Python components are ~18 MB).
pub const MAX_IMAGE_BYTES: u64 = 256 << 20;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    File(PathBuf),
    Http(String),
}

/// A parsed image reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageRef {
    pub source: Source,
    /// Expected digest as lowercase hex, when pinned.
    pub sha256: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("invalid image reference {image:?}: {reason}")]
    BadReference { image: String, reason: String },
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot fetch {url}: {reason}")]
    Http { url: String, reason: String },
    #[error("{image} is larger than the limit of {MAX_IMAGE_BYTES} bytes")]
    TooLarge { image: String },
    #[error("digest mismatch for {image}: expected sha256:{expected}, got sha256:{actual}")]
    DigestMismatch {
        image: String,
        expected: String,
        actual: String,
    },
}

impl ImageRef {
    pub fn parse(image: &str) -> Result<Self, FetchError> {
        let bad = |reason: &str| FetchError::BadReference {
            image: image.to_string(),
            reason: reason.to_string(),
        };
        let trimmed = image.trim();
        if trimmed.is_empty() {
            return Err(bad("empty"));
        }
        let (location, sha256) = match trimmed.rsplit_once("@sha256:") {
            Some((loc, hex)) => {
                let hex = hex.to_ascii_lowercase();
                if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                    return Err(bad("the digest after @sha256: must be 64 hex characters"));
                }
                (loc, Some(hex))
            }
            None => (trimmed, None),
        };
        let source = if let Some(path) = location.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err(bad(
                    "file:// URLs must hold an absolute path (file:///path/to/c.wasm)",
                ));
            }
            Source::File(PathBuf::from(path))
        } else if location.starts_with("http://") || location.starts_with("https://") {
            Source::Http(location.to_string())
        } else if location.contains("://") {
            let scheme = location.split("://").next().unwrap_or_default();
            return Err(bad(&format!(
                "unsupported scheme {scheme}:// (use a path, file://, http:// or https://)"
            )));
        } else {
            Source::File(PathBuf::from(location))
        };
        Ok(Self { source, sha256 })
    }

    /// The image as given, without the digest.
    pub fn location(&self) -> String {
        match &self.source {
            Source::File(p) => p.display().to_string(),
            Source::Http(u) => u.clone(),
        }
    }

    /// Reads the bytes and checks the pinned digest. Returns the bytes and their digest (hex).
    pub async fn fetch(&self) -> Result<(Vec<u8>, String), FetchError> {
        let bytes = match &self.source {
            Source::File(path) => read_file(path).await?,
            Source::Http(url) => fetch_http(url).await?,
        };
        let actual = hex::encode(Sha256::digest(&bytes));
        if let Some(expected) = &self.sha256 {
            if *expected != actual {
                return Err(FetchError::DigestMismatch {
                    image: self.location(),
                    expected: expected.clone(),
                    actual,
                });
            }
        }
        Ok((bytes, actual))
    }
}

async fn read_file(path: &PathBuf) -> Result<Vec<u8>, FetchError> {
    let read_err = |source| FetchError::Read {
        path: path.display().to_string(),
        source,
    };
    let meta = tokio::fs::metadata(path).await.map_err(read_err)?;
    if meta.len() > MAX_IMAGE_BYTES {
        return Err(FetchError::TooLarge {
            image: path.display().to_string(),
        });
    }
    tokio::fs::read(path).await.map_err(read_err)
}

async fn fetch_http(url: &str) -> Result<Vec<u8>, FetchError> {
    let http = |reason: String| FetchError::Http {
        url: url.to_string(),
        reason,
    };
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(120))
        .build()
        .map_err(|e| http(e.to_string()))?;
    let mut resp = client
        .get(url)
        .send()
        .await
        .map_err(|e| http(e.to_string()))?;
    if !resp.status().is_success() {
        return Err(http(format!("server answered {}", resp.status())));
    }
    if resp.content_length().is_some_and(|n| n > MAX_IMAGE_BYTES) {
        return Err(FetchError::TooLarge {
            image: url.to_string(),
        });
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| http(e.to_string()))? {
        if bytes.len() as u64 + chunk.len() as u64 > MAX_IMAGE_BYTES {
            return Err(FetchError::TooLarge {
                image: url.to_string(),
            });
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        let r = ImageRef::parse("/tmp/a.wasm").unwrap();
        assert_eq!(r.source, Source::File("/tmp/a.wasm".into()));
        assert_eq!(r.sha256, None);
        let hex = "ab".repeat(32);
        let r = ImageRef::parse(&format!("file:///tmp/a.wasm@sha256:{hex}")).unwrap();
        assert_eq!(r.source, Source::File("/tmp/a.wasm".into()));
        assert_eq!(r.sha256.as_deref(), Some(hex.as_str()));
        let r = ImageRef::parse("https://example.com/c.wasm").unwrap();
        assert_eq!(r.source, Source::Http("https://example.com/c.wasm".into()));
        for bad in [
            "",
            "file://relative",
            "oci://ghcr.io/x:1",
            "a.wasm@sha256:xyz",
        ] {
            assert!(ImageRef::parse(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn digest_is_enforced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.wasm");
        std::fs::write(&path, b"hello").unwrap();
        let good = hex::encode(Sha256::digest(b"hello"));
        let r = ImageRef::parse(&format!("{}@sha256:{good}", path.display())).unwrap();
        assert_eq!(r.fetch().await.unwrap().1, good);
        let r = ImageRef::parse(&format!("{}@sha256:{}", path.display(), "0".repeat(64))).unwrap();
        let err = r.fetch().await.unwrap_err().to_string();
        assert!(err.contains("digest mismatch"), "{err}");
        let r = ImageRef::parse("/definitely/not/here.wasm").unwrap();
        let err = r.fetch().await.unwrap_err().to_string();
        assert!(
            err.contains("cannot read /definitely/not/here.wasm"),
            "{err}"
        );
    }
}
