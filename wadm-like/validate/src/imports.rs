//! What a component image imports, read from local images (paths and `file://`) to check that
//! links name interfaces their source really imports. Nothing is fetched over the network:
//! an `http(s)://` or `builtin://` image is simply not checked.

use trellis_lattice::image::{ImageRef, ImageSource, MAX_IMAGE_BYTES};
use wasmparser::{Encoding, Parser, Payload};

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
    let ImageSource::File(path) = ImageRef::parse(image).ok()?.source else {
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
