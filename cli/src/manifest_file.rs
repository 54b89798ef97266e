//! Manifest files on this machine: read, checked locally (no lattice needed), image paths made
//! absolute relative to the file's folder.

use std::path::Path;

use anyhow::Context as _;
use trellis_lattice::image;
use trellis_lattice::manifest::Manifest;

use crate::global::Global;
use crate::output::{self, Format};

/// A manifest file's text: a regular file within the size limit, in UTF-8, or the located
/// errors and the exit code of invalid input.
fn read_text(file: &str) -> String {
    match trellis_validate::read_file(Path::new(file)) {
        Ok(text) => text,
        Err(errors) => fail_with_lines(&errors.to_string()),
    }
}

/// Prints located errors one per line and exits with the code of invalid input.
pub fn fail_with_lines(text: &str) -> ! {
    for line in text.lines() {
        eprintln!("{line}");
    }
    std::process::exit(crate::exit::INVALID.into())
}

/// Reads and validates a manifest file, with image paths made absolute relative to its folder.
pub fn read_manifest(file: &str) -> anyhow::Result<Manifest> {
    let text = read_text(file);
    let dir = Path::new(file)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let dir = std::fs::canonicalize(dir).with_context(|| format!("resolving {}", dir.display()))?;
    match trellis_validate::parse_and_check_images(file, &text, &dir) {
        Ok(mut m) => {
            for c in &mut m.spec.components {
                c.properties.image = image::absolutize(&c.properties.image, &dir);
            }
            Ok(m)
        }
        Err(errors) => fail_with_lines(&errors.to_string()),
    }
}

pub fn validate_file(g: &Global, file: &str) -> anyhow::Result<()> {
    let text = read_text(file);
    let dir = Path::new(file)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let result = trellis_validate::parse_and_check_images(file, &text, dir);
    if g.output == Format::Json {
        let out = match &result {
            Ok(m) => serde_json::json!({
                "valid": true, "name": m.name(), "version": m.version(), "errors": [],
            }),
            Err(e) => serde_json::json!({ "valid": false, "errors": e.errors }),
        };
        output::print_json(&out)?;
        if result.is_err() {
            std::process::exit(crate::exit::INVALID.into());
        }
        return Ok(());
    }
    match result {
        Ok(m) => {
            println!(
                "{file}: valid: application {}{}, {} components",
                m.name(),
                m.version()
                    .map(|v| format!(" version {v}"))
                    .unwrap_or_default(),
                m.spec.components.len()
            );
            Ok(())
        }
        Err(errors) => fail_with_lines(&errors.to_string()),
    }
}
