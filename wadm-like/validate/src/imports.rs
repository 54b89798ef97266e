//! What a local image holds, read to check a manifest before it reaches a lattice: that the
//! file is a regular file within the size limit, that it matches its pinned digest, that a
//! component is a component, and what it imports (links must name interfaces their source
//! really imports). Nothing is fetched over the network: an `http(s)://` or `builtin://`
//! image, or a file this machine does not have, is not checked (the host reads it).

use trellis_lattice::image::local::{self, LocalReadError};
use trellis_lattice::image::{ImageRef, ImageSource, MAX_IMAGE_BYTES};
use wasmparser::{Encoding, Parser, Payload};

const WASM_MAGIC: &[u8; 4] = b"\0asm";

/// What reading an image found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Inspection {
    /// Not a local file here: nothing to say.
    Unchecked,
    /// The image cannot be used; the reason names the problem, never the file's contents.
    Problem(String),
    /// A usable image; a component's imports.
    Usable { imports: Option<Vec<String>> },
}

/// Reads a local image (path or `file://`) and says what it found. `component` tells a
/// WebAssembly component (whose imports are listed) from a provider's executable.
pub fn inspect(image: &str, component: bool) -> Inspection {
    let Ok(reference) = ImageRef::parse(image) else {
        // The reference itself is checked (and reported) where the manifest is walked.
        return Inspection::Unchecked;
    };
    let ImageSource::File(path) = &reference.source else {
        return Inspection::Unchecked;
    };
    let bytes = match local::read_blocking(path, MAX_IMAGE_BYTES) {
        Ok(bytes) => bytes,
        Err(err @ (LocalReadError::NotRegular { .. } | LocalReadError::TooLarge { .. })) => {
            return Inspection::Problem(err.to_string())
        }
        Err(err) => {
            tracing::debug!(image, %err, "cannot read the image to check it");
            return Inspection::Unchecked;
        }
    };
    if let Err(mismatch) = reference.verify(&bytes) {
        return Inspection::Problem(mismatch.to_string());
    }
    if !component {
        return Inspection::Usable { imports: None };
    }
    match component_imports(&bytes) {
        Ok(imports) => Inspection::Usable {
            imports: Some(imports),
        },
        Err(reason) => Inspection::Problem(format!("{} {reason}", path.display())),
    }
}

/// The imports of a local component image, when it can be read and is a component.
pub fn read_imports(image: &str) -> Option<Vec<String>> {
    match inspect(image, true) {
        Inspection::Usable { imports } => imports,
        _ => None,
    }
}

/// The names a WebAssembly component imports at its top level
/// (`wasi:keyvalue/atomics@0.2.0-draft`, ...), in the order it declares them. Imports of
/// modules and components nested inside it are internal wiring and are not listed. Errors
/// say what is wrong and where, never what the bytes are.
pub fn component_imports(bytes: &[u8]) -> Result<Vec<String>, String> {
    if bytes.len() < 8 || &bytes[..4] != WASM_MAGIC {
        return Err(
            "is not a WebAssembly file (it does not start with the WebAssembly magic number)"
                .into(),
        );
    }
    let malformed = |e: wasmparser::BinaryReaderError| {
        format!(
            "is not a valid WebAssembly component (malformed at byte {})",
            e.offset()
        )
    };
    let mut imports = Vec::new();
    // Nesting depth: every nested module or component section is followed by its own payloads
    // and an `End`.
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.map_err(malformed)? {
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
                    imports.push(import.map_err(malformed)?.name.0.to_string());
                }
            }
            _ => {}
        }
    }
    Ok(imports)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

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
        let err = component_imports(b"root:$6$secret:19000:0:99999:7:::").unwrap_err();
        assert!(err.contains("not a WebAssembly file"), "{err}");
        assert!(
            !err.contains("root") && !err.contains("72"),
            "no content echoed: {err}"
        );
        let mut truncated = wat::parse_str(WAT).unwrap();
        truncated.truncate(20);
        let err = component_imports(&truncated).unwrap_err();
        assert!(err.contains("malformed at byte"), "{err}");
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
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/components/greeter.wasm");
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
