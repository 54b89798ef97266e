//! Manifest validation: YAML or JSON text in, a [`Manifest`] or every mistake out. Used by
//! the CLI (`trellis app validate`, no lattice needed) and the deployment manager alike.
//!
//! - [`imports`]: what a local component image imports, to check links against.
//!
//! The text is parsed to a generic value first and then walked by hand, so each error carries
//! its location (`spec.components[2].traits[0].properties.instances`) and the walk continues
//! past it: a user fixes all mistakes in one round. Checks that span components (duplicate
//! ids, link targets, config names) run on what could be read.

mod component;
mod cross;
mod errors;
mod fields;
mod grants;
pub mod imports;
pub mod needs;
mod syntax;
mod traits;

use std::path::Path;

use serde_json::Value;
use trellis_lattice::manifest::{Manifest, Metadata, Spec, API_VERSION, KIND};

pub use errors::{ValidationError, ValidationErrors};
use fields::{Errors, Obj};
pub use imports::Inspection;
use syntax::parse_syntax;
pub use syntax::{read_file, text_of};
use trellis_lattice::image;

/// Longest accepted version annotation.
const MAX_VERSION_LEN: usize = 64;

/// Parses and validates a manifest given as YAML or JSON (JSON when the name ends in `.json`
/// or the text starts with `{`). `source_name` prefixes every error line.
pub fn parse(source_name: &str, text: &str) -> Result<Manifest, ValidationErrors> {
    let fail = |errs: Errors| ValidationErrors::new(source_name, errs.0);
    let mut errs = Errors::default();
    if text.len() > trellis_lattice::limits::MAX_MANIFEST_BYTES {
        errs.add(
            "",
            format!(
                "the manifest is {} bytes; at most {} are accepted (it must fit in one NATS message)",
                text.len(),
                trellis_lattice::limits::MAX_MANIFEST_BYTES
            ),
        );
        return Err(fail(errs));
    }
    let Some(doc) = parse_syntax(source_name, text, &mut errs) else {
        return Err(fail(errs));
    };
    let manifest = walk_document(&doc, &mut errs);
    match manifest {
        Some(m) if errs.0.is_empty() => Ok(m),
        _ => Err(fail(errs)),
    }
}

/// Everything [`parse`] checks plus [`check_images`] on the images that can be read locally
/// (paths and `file://`); relative image paths are read relative to `base_dir`, the
/// manifest's folder.
pub fn parse_and_check_images(
    source_name: &str,
    text: &str,
    base_dir: &Path,
) -> Result<Manifest, ValidationErrors> {
    parse_then_check(source_name, text, |image, component| {
        imports::inspect(&image::absolutize(image, base_dir), component)
    })
}

/// Everything [`parse`] checks plus [`check_images`] on images given by absolute path or
/// `file://` URL only: what a server can check, where relative paths would be read from its
/// own working directory rather than the author's.
pub fn parse_and_check_absolute_images(
    source_name: &str,
    text: &str,
) -> Result<Manifest, ValidationErrors> {
    parse_then_check(source_name, text, |image, component| {
        let absolute = matches!(
            image::ImageRef::parse(image),
            Ok(image::ImageRef { source: image::ImageSource::File(ref p), .. }) if p.is_absolute()
        );
        if absolute {
            imports::inspect(image, component)
        } else {
            Inspection::Unchecked
        }
    })
}

fn parse_then_check(
    source_name: &str,
    text: &str,
    inspect: impl Fn(&str, bool) -> Inspection,
) -> Result<Manifest, ValidationErrors> {
    let mut manifest = parse(source_name, text)?;
    let (errors, imports) = check_and_collect(&manifest, inspect);
    if !errors.is_empty() {
        return Err(ValidationErrors::new(source_name, errors));
    }
    for (index, imports) in imports {
        needs::imply(&mut manifest, index, &needs::implied_requirements(&imports));
    }
    Ok(manifest)
}

/// Reports images that cannot be used (not a regular file, too large, not matching their
/// pinned digest, not a component) and links whose interfaces their source component does
/// not import. `inspect(image, is_component)` reads an image (see [`imports::inspect`]).
pub fn check_images(
    manifest: &Manifest,
    inspect: impl Fn(&str, bool) -> Inspection,
) -> Vec<ValidationError> {
    check_and_collect(manifest, inspect).0
}

/// [`check_images`], also returning the imports of every component whose image was read,
/// by its index.
fn check_and_collect(
    manifest: &Manifest,
    inspect: impl Fn(&str, bool) -> Inspection,
) -> (Vec<ValidationError>, Vec<(usize, Vec<String>)>) {
    let mut errs = Vec::new();
    let mut collected = Vec::new();
    for (i, c) in manifest.spec.components.iter().enumerate() {
        let component = c.kind == trellis_lattice::manifest::ComponentKind::Component;
        let imports = match inspect(&c.properties.image, component) {
            Inspection::Unchecked | Inspection::Usable { imports: None } => continue,
            Inspection::Problem(problem) => {
                errs.push(ValidationError {
                    path: format!("spec.components[{i}].properties.image"),
                    message: problem,
                });
                continue;
            }
            Inspection::Usable {
                imports: Some(imports),
            } => imports,
        };
        collected.push((i, imports.clone()));
        let unversioned: Vec<&str> = imports
            .iter()
            .map(|i| i.split('@').next().unwrap_or(i))
            .collect();
        for (j, link) in c.links() {
            for iface in &link.interfaces {
                let wanted = format!("{}:{}/{iface}", link.namespace, link.package);
                if unversioned.contains(&wanted.as_str()) {
                    continue;
                }
                let have = if imports.is_empty() {
                    "it imports nothing".to_string()
                } else {
                    format!("it imports: {}", imports.join(", "))
                };
                errs.push(ValidationError {
                    path: format!("spec.components[{i}].traits[{j}]"),
                    message: format!(
                        "interface {wanted} is not imported by component {} ({have})",
                        c.name
                    ),
                });
            }
        }
    }
    (errs, collected)
}

/// The top level: `apiVersion`, `kind`, `metadata`, `spec`.
fn walk_document(doc: &Value, errs: &mut Errors) -> Option<Manifest> {
    let top = Obj::open(
        doc,
        "",
        "the manifest",
        &["apiVersion", "kind", "metadata", "spec"],
        errs,
    )?;
    if let Some(v) = top.req_str("apiVersion", "apiVersion", errs) {
        if v != API_VERSION {
            errs.add(
                "apiVersion",
                format!("apiVersion must be {API_VERSION}, found {v:?}"),
            );
        }
    }
    if let Some(v) = top.req_str("kind", "kind", errs) {
        if v != KIND {
            errs.add("kind", format!("kind must be {KIND}, found {v:?}"));
        }
    }
    let metadata = top
        .require("metadata", "the application's name and annotations", errs)
        .and_then(|v| walk_metadata(v, errs));
    // Default component ids derive from the app name; use it as written even when invalid so
    // the id checks below still say something sensible.
    let app_name = metadata.as_ref().map_or_else(
        || {
            doc["metadata"]["name"]
                .as_str()
                .unwrap_or("app")
                .to_string()
        },
        |m| m.name.clone(),
    );
    let components = top
        .require("spec", "the application's components", errs)
        .and_then(|v| Obj::open(v, "spec", "spec", &["components"], errs))
        .and_then(|spec| {
            let list = spec.require("components", "the list of components", errs)?;
            let items = fields::list(list, "spec.components", "spec.components", errs)?;
            if items.is_empty() {
                errs.add("spec.components", "the application has no components");
            }
            Some(component::walk_all(items, &app_name, errs))
        });
    let metadata = metadata?;
    let components = components?;
    Some(Manifest {
        api_version: API_VERSION.to_string(),
        kind: KIND.to_string(),
        metadata,
        spec: Spec { components },
    })
}

fn walk_metadata(v: &Value, errs: &mut Errors) -> Option<Metadata> {
    let meta = Obj::open(v, "metadata", "metadata", &["name", "annotations"], errs)?;
    let name = meta
        .req_str("name", "the application name", errs)
        .and_then(
            |name| match trellis_lattice::id::validate_token("application name", name) {
                Ok(()) => Some(name.to_string()),
                Err(e) => {
                    errs.add(&meta.at("name"), e.to_string());
                    None
                }
            },
        );
    let annotations = match meta.get("annotations") {
        None => Some(Default::default()),
        Some(v) => fields::string_map(v, &meta.at("annotations"), "annotation", errs, |k, v| {
            if k == trellis_lattice::manifest::VERSION_ANNOTATION {
                check_version(v)
            } else if k == trellis_lattice::manifest::UNREACHABLE_GRACE_ANNOTATION {
                humantime::parse_duration(v)
                    .map(drop)
                    .map_err(|e| format!("must be a duration such as `10m` or `1h`: {e}"))
            } else {
                Ok(())
            }
        }),
    };
    Some(Metadata {
        name: name?,
        annotations: annotations?,
    })
}

/// Versions name stored entries, so they are kept to characters every store accepts.
fn check_version(v: &str) -> Result<(), String> {
    let ok = !v.is_empty()
        && v.len() <= MAX_VERSION_LEN
        && v.starts_with(|c: char| c.is_ascii_alphanumeric())
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "version {:?} must be 1 to {MAX_VERSION_LEN} letters, digits, '.', '-' or '_', \
             starting with a letter or digit",
            trellis_lattice::error::shorten(v)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COUNTER: &str = "
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: counter
  annotations: { version: v1 }
spec:
  components:
    - name: counter
      type: component
      properties: { image: counter.wasm }
      traits:
        - type: spreadscaler
          properties: { instances: 2 }
        - type: link
          properties:
            target: { name: kv }
            namespace: wasi
            package: keyvalue
            interfaces: [atomics, store]
    - name: kv
      type: capability
      properties: { image: builtin://keyvalue-nats }
      traits: [ { type: daemonscaler } ]
";

    #[test]
    fn parses_yaml_and_round_trips_through_json() {
        let m = parse("counter.yaml", COUNTER).unwrap();
        assert_eq!(m.version(), Some("v1"));
        assert_eq!(m.spec.components.len(), 2);
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(parse("stored.json", &json).unwrap(), m);
    }

    #[test]
    fn errors_display_one_per_line_with_source_and_path() {
        let text = COUNTER
            .replace("instances: 2", "instances: -1")
            .replace("name: kv }", "name: kvv }");
        let err = parse("app.yaml", &text).unwrap_err();
        assert_eq!(
            err.to_string(),
            "app.yaml: spec.components[0].traits[0].properties.instances: spreadscaler.instances must be a non-negative integer, found -1\n\
             app.yaml: spec.components[0].traits[1].properties.target.name: link target \"kvv\" is not a component in this application (did you mean `kv`?)"
        );
        let err = parse("app.yaml", "").unwrap_err();
        assert_eq!(err.to_string(), "app.yaml: the manifest is empty");
    }

    #[test]
    fn image_checks_report_problems_and_unimported_links() {
        let m = parse("counter.yaml", COUNTER).unwrap();
        let counter_image = m.spec.components[0].properties.image.clone();
        let imports = |image: &str, _: bool| {
            if image == counter_image {
                Inspection::Usable {
                    imports: Some(vec!["wasi:keyvalue/store@0.2.0-draft".to_string()]),
                }
            } else {
                Inspection::Unchecked
            }
        };
        let errs = check_images(&m, imports);
        assert_eq!(errs.len(), 1);
        assert_eq!(
            errs[0].to_string(),
            "spec.components[0].traits[1]: interface wasi:keyvalue/atomics is not imported by component counter \
             (it imports: wasi:keyvalue/store@0.2.0-draft)"
        );
        assert!(check_images(&m, |_, _| Inspection::Unchecked).is_empty());
        let none = check_images(&m, |_, _| Inspection::Usable {
            imports: Some(vec![]),
        });
        assert!(
            none[0].message.ends_with("(it imports nothing)"),
            "{}",
            none[0]
        );
        let bad = check_images(&m, |_, _| {
            Inspection::Problem("/dev/zero is a character device, not a regular file".into())
        });
        assert_eq!(
            bad[0].to_string(),
            "spec.components[0].properties.image: /dev/zero is a character device, not a regular file"
        );
    }
}
