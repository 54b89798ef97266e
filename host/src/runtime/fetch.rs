//! Reading the bytes of an image: a local path or `file://`, or an `http(s)://` URL, checked
//! against the digest it is pinned to (see `trellis_lattice::image`).

use std::time::Duration;

use trellis_lattice::image::local::{self, LocalReadError};
use trellis_lattice::image::{DigestMismatch, ImageError, ImageRef, ImageSource, MAX_IMAGE_BYTES};
use trellis_lattice::ControlError;

/// How long a fetch may take unless the host is told otherwise (`--fetch-timeout`).
pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(transparent)]
    BadReference(#[from] ImageError),
    #[error("{image} names a provider built into the host; components come from a path, file:// or http(s)://")]
    Builtin { image: String },
    #[error(transparent)]
    Local(#[from] LocalReadError),
    #[error("cannot fetch {url}: {reason}")]
    Http { url: String, reason: String },
    #[error("{image} is larger than the limit of {MAX_IMAGE_BYTES} bytes")]
    TooLarge { image: String },
    #[error(transparent)]
    DigestMismatch(#[from] DigestMismatch),
}

impl FetchError {
    /// The control error a start that failed this way answers with.
    pub fn control_error(&self) -> ControlError {
        match self {
            FetchError::BadReference(_)
            | FetchError::Builtin { .. }
            | FetchError::TooLarge { .. }
            | FetchError::Local(LocalReadError::NotRegular { .. })
            | FetchError::Local(LocalReadError::TooLarge { .. }) => {
                ControlError::invalid(self.to_string())
            }
            FetchError::Local(e) if e.is_not_found() => ControlError::not_found(self.to_string()),
            FetchError::Local(_) | FetchError::Http { .. } => {
                ControlError::unavailable(self.to_string())
            }

            FetchError::DigestMismatch(_) => ControlError::refused(self.to_string()),
        }
    }
}

/// The bytes of a component image, their digest (hex) and the image's location, within
/// `deadline`.
pub async fn fetch_component(
    image: &str,
    deadline: Duration,
) -> Result<(Vec<u8>, String, String), FetchError> {
    let reference = ImageRef::parse(image)?;
    if matches!(reference.source, ImageSource::Builtin(_)) {
        return Err(FetchError::Builtin {
            image: image.to_string(),
        });
    }
    let (bytes, digest) = fetch(&reference, deadline).await?;
    Ok((bytes, digest, reference.location()))
}

/// Reads the bytes of a path or URL image within `deadline` and checks the pinned digest.
/// Returns the bytes and their digest (hex).
pub async fn fetch(
    reference: &ImageRef,
    deadline: Duration,
) -> Result<(Vec<u8>, String), FetchError> {
    let bytes = match &reference.source {
        ImageSource::File(path) => local::read(path.clone(), MAX_IMAGE_BYTES, deadline).await?,
        ImageSource::Http(url) => fetch_http(url, deadline).await?,
        ImageSource::Builtin(_) => {
            return Err(FetchError::Builtin {
                image: reference.location(),
            })
        }
    };
    let digest = reference.verify(&bytes)?;
    Ok((bytes, digest))
}

async fn fetch_http(url: &str, deadline: Duration) -> Result<Vec<u8>, FetchError> {
    let http = |reason: String| FetchError::Http {
        url: url.to_string(),
        reason,
    };
    let client = reqwest::Client::builder()
        .connect_timeout(deadline.min(Duration::from_secs(10)))
        .timeout(deadline)
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

    #[tokio::test]
    async fn digest_is_enforced_and_errors_are_kinded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.wasm");
        std::fs::write(&path, b"hello").unwrap();
        let good = trellis_lattice::image::digest(b"hello");
        let wait = DEFAULT_FETCH_TIMEOUT;
        let pinned = format!("{}@sha256:{good}", path.display());
        let (_, digest, location) = fetch_component(&pinned, wait).await.unwrap();
        assert_eq!(digest, good);
        assert_eq!(location, path.display().to_string());
        let err = fetch_component(
            &format!("{}@sha256:{}", path.display(), "0".repeat(64)),
            wait,
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("digest mismatch"), "{err}");
        assert_eq!(
            err.control_error().kind,
            trellis_lattice::ErrorKind::Refused
        );
        let err = fetch_component("/definitely/not/here.wasm", wait)
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("cannot read /definitely/not/here.wasm"),
            "{err}"
        );
        assert_eq!(
            err.control_error().kind,
            trellis_lattice::ErrorKind::NotFound
        );
        let err = fetch_component("builtin://keyvalue-nats", wait)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("built into the host"), "{err}");
        let err = fetch_component("/dev/zero", wait).await.unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
        assert_eq!(
            err.control_error().kind,
            trellis_lattice::ErrorKind::Invalid
        );
    }
}
