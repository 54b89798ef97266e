//! Image references and what a component image imports.
//!
//! The manager reads local images (paths and `file://`) to check that links name interfaces
//! their source really imports. It never fetches over the network: an `http(s)://` or
//! `builtin://` image is simply not checked.

use std::path::{Path, PathBuf};

use wasmparser::{Encoding, Parser, Payload};

/// Images larger than this are not read (the host's own limit).
pub const MAX_IMAGE_BYTES: u64 = 256 << 20;

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

/// A parsed image reference: a location optionally pinned with `@sha256:<64 hex>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageRef {
    pub source: ImageSource,
    /// The pinned digest as lower-case hex.
    pub sha256: Option<String>,
}

/// Parses an image reference as the host accepts it, plus `builtin://NAME` for providers.
/// The error is the reason only; callers name the input.
pub fn parse_image(image: &str) -> Result<ImageRef, String> {
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
    } else if let Some(name) = location.strip_prefix("builtin://") {
        trellis_lattice::id::validate_token("builtin provider name", name)
            .map_err(|e| e.to_string())?;
        if sha256.is_some() {
            return Err(
                "a builtin:// image is part of the host and cannot be pinned with a digest".into(),
            );
        }
        ImageSource::Builtin(name.to_string())
    } else if let Some((scheme, _)) = location.split_once("://") {
        let oci = if scheme == "oci" {
            "; OCI registries are not supported, "
        } else {
            " ("
        };
        let close = if scheme == "oci" { "" } else { ")" };
        return Err(format!(
            "unsupported scheme {scheme}://{oci}use a path, file:///abs, http(s):// or builtin://NAME{close}"
        ));
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

/// A relative path image made absolute against `base_dir` (the manifest's directory) as a
/// `file://` URL, so a host in another working directory finds it. Other images are returned
/// as they are.
pub fn absolutize(image: &str, base_dir: &Path) -> String {
    match parse_image(image) {
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

/// The names a WebAssembly component imports at its top level
/// (`wasi:keyvalue/atomics@0.2.0-draft`, ...), in the order it declares them. Imports of
/// modules and components nested inside it are internal wiring and are not listed.
pub fn component_imports(bytes: &[u8]) -> Result<Vec<String>, String> {
    let mut imports = Vec::new();
    // Nesting depth: every nested module or component section is followed by its own payloads
    // and an `End`.
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(|e| format!("not a valid WebAssembly component: {e}"))?;
        match payload {
            Payload::Version {
                encoding: Encoding::Module,
                ..
            } if depth == 0 => {
                return Err("is a core WebAssembly module, not a component".into());
            }
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => {
                if depth == 0 {
                    break;
                }
                depth -= 1;
            }
            Payload::ComponentImportSection(reader) if depth == 0 => {
                for import in reader {
                    let import =
                        import.map_err(|e| format!("not a valid WebAssembly component: {e}"))?;
                    imports.push(import.name.0.to_string());
                }
            }
            _ => {}
        }
    }
    Ok(imports)
}

/// The imports of a local image (path or `file://`), or `None` when the image is remote,
/// built in, unreadable, too large or not a component: the check is best effort, and the
/// host reports the real error when it loads the image.
pub fn read_imports(image: &str) -> Option<Vec<String>> {
    let ImageSource::File(path) = parse_image(image).ok()?.source else {
        return None;
    };
    let size = std::fs::metadata(&path).ok()?.len();
    if size > MAX_IMAGE_BYTES {
        return None;
    }
    let bytes = std::fs::read(&path).ok()?;
    match component_imports(&bytes) {
        Ok(imports) => Some(imports),
        Err(reason) => {
            tracing::debug!(image, reason, "cannot list the imports of the image");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn accepted_references() {
        let r = parse_image("./build/c.wasm").unwrap();
        assert_eq!(r.source, ImageSource::File("./build/c.wasm".into()));
        let r = parse_image(&format!("file:///srv/c.wasm@sha256:{}", HEX.to_uppercase())).unwrap();
        assert_eq!(r.source, ImageSource::File("/srv/c.wasm".into()));
        assert_eq!(r.sha256.as_deref(), Some(HEX));
        let r = parse_image("https://example.com/c.wasm").unwrap();
        assert_eq!(
            r.source,
            ImageSource::Http("https://example.com/c.wasm".into())
        );
        let r = parse_image("builtin://keyvalue-nats").unwrap();
        assert_eq!(r.source, ImageSource::Builtin("keyvalue-nats".into()));
    }

    #[test]
    fn refused_references() {
        let cases = [
            ("", "is empty"),
            ("my component.wasm", "whitespace"),
            ("oci://ghcr.io/x/y:1", "OCI registries are not supported"),
            ("ftp://x/c.wasm", "unsupported scheme ftp://"),
            ("ghcr.io/org/app:0.1.0", "OCI registry reference"),
            ("file://rel/c.wasm", "absolute path"),
            ("c.wasm@sha256:abc", "64 hex characters"),
            ("https:///c.wasm", "no host name"),
            ("builtin://a.b", "builtin provider name"),
        ];
        for (image, want) in cases {
            let err = parse_image(image).unwrap_err();
            assert!(err.contains(want), "{image:?}: {err}");
        }
        assert!(parse_image(&format!("builtin://kv@sha256:{HEX}")).is_err());
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

    /// A component importing two interfaces and nesting a module and a component with imports
    /// of their own, which must not be listed.
    const WAT: &str = r#"
    (component
      (import "wasi:keyvalue/atomics@0.2.0-draft" (instance))
      (import "wasi:logging/logging" (instance
        (export "log" (func))
      ))
      (core module $m (import "env" "f" (func)))
      (component $inner
        (import "trellis:gpio/pins" (instance))
      )
    )"#;

    #[test]
    fn lists_top_level_imports_only() {
        let bytes = wat::parse_str(WAT).unwrap();
        let imports = component_imports(&bytes).unwrap();
        assert_eq!(
            imports,
            ["wasi:keyvalue/atomics@0.2.0-draft", "wasi:logging/logging"]
        );
    }

    #[test]
    fn refuses_modules_and_garbage() {
        let module = wat::parse_str("(module)").unwrap();
        assert!(component_imports(&module)
            .unwrap_err()
            .contains("core WebAssembly module"));
        assert!(component_imports(b"not wasm")
            .unwrap_err()
            .contains("not a valid"));
    }

    #[test]
    fn reads_local_files() {
        let dir = std::env::temp_dir().join(format!("trellis-deploy-image-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.wasm");
        std::fs::write(&path, wat::parse_str(WAT).unwrap()).unwrap();
        let url = format!("file://{}", path.display());
        assert_eq!(read_imports(&url).unwrap().len(), 2);
        assert_eq!(read_imports(&path.display().to_string()).unwrap().len(), 2);
        assert_eq!(read_imports("https://example.com/c.wasm"), None);
        assert_eq!(read_imports("builtin://keyvalue-nats"), None);
        assert_eq!(
            read_imports(&dir.join("missing.wasm").display().to_string()),
            None
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    /// The example components, when they have been built (`examples/build.sh`).
    #[test]
    fn real_greeter_imports_only_wasi() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/components/greeter.wasm");
        let bytes = std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; build the example components first with examples/build.sh",
                path.display()
            )
        });
        let imports = component_imports(&bytes).unwrap();
        assert!(!imports.is_empty());
        assert!(
            imports.iter().all(|i| i.starts_with("wasi:")),
            "{imports:?}"
        );
    }
}
