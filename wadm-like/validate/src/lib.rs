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
pub mod imports;
mod traits;

use std::path::Path;

use serde_json::Value;
use trellis_lattice::manifest::{ComponentSpec, Manifest, Metadata, Spec, API_VERSION, KIND};

pub use errors::{ValidationError, ValidationErrors};
use fields::{Errors, Obj};
use trellis_lattice::image;

/// Longest accepted version annotation.
const MAX_VERSION_LEN: usize = 64;

/// Parses and validates a manifest given as YAML or JSON (JSON when the name ends in `.json`
/// or the text starts with `{`). `source_name` prefixes every error line.
pub fn parse(source_name: &str, text: &str) -> Result<Manifest, ValidationErrors> {
    let fail = |errs: Errors| ValidationErrors::new(source_name, errs.0);
    let mut errs = Errors::default();
    let Some(doc) = parse_syntax(source_name, text, &mut errs) else {
        return Err(fail(errs));
    };
    let manifest = walk_document(&doc, &mut errs);
    match manifest {
        Some(m) if errs.0.is_empty() => Ok(m),
        _ => Err(fail(errs)),
    }
}

/// Everything [`parse`] checks plus [`check_imports`] on the images that can be read locally
/// (paths and `file://`); relative image paths are read relative to `base_dir`, the
/// manifest's folder.
pub fn parse_and_check_imports(
    source_name: &str,
    text: &str,
    base_dir: &Path,
) -> Result<Manifest, ValidationErrors> {
    parse_then_check(source_name, text, |image| {
        imports::read_imports(&image::absolutize(image, base_dir))
    })
}

/// Everything [`parse`] checks plus [`check_imports`] on images given by absolute path or
/// `file://` URL only: what a server can check, where relative paths would be read from its
/// own working directory rather than the author's.
pub fn parse_and_check_absolute_images(
    source_name: &str,
    text: &str,
) -> Result<Manifest, ValidationErrors> {
    parse_then_check(source_name, text, |image| {
        let absolute = matches!(
            image::ImageRef::parse(image),
            Ok(image::ImageRef { source: image::ImageSource::File(ref p), .. }) if p.is_absolute()
        );
        absolute.then(|| imports::read_imports(image)).flatten()
    })
}

fn parse_then_check(
    source_name: &str,
    text: &str,
    imports_of_image: impl Fn(&str) -> Option<Vec<String>>,
) -> Result<Manifest, ValidationErrors> {
    let manifest = parse(source_name, text)?;
    let errors = check_imports(&manifest, |c| imports_of_image(&c.properties.image));
    if errors.is_empty() {
        Ok(manifest)
    } else {
        Err(ValidationErrors::new(source_name, errors))
    }
}

/// Reports links whose interfaces their source component does not import. `imports_of`
/// returns a component's imports when they can be known (see [`imports::read_imports`]);
/// capability providers are not WebAssembly and are not checked.
pub fn check_imports(
    manifest: &Manifest,
    imports_of: impl Fn(&ComponentSpec) -> Option<Vec<String>>,
) -> Vec<ValidationError> {
    let mut errs = Vec::new();
    for (i, c) in manifest.spec.components.iter().enumerate() {
        if c.kind != trellis_lattice::manifest::ComponentKind::Component
            || c.links().next().is_none()
        {
            continue;
        }
        let Some(imports) = imports_of(c) else {
            continue;
        };
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
    errs
}

/// YAML or JSON text to a JSON value, reporting syntax errors with line and column.
fn parse_syntax(source_name: &str, text: &str, errs: &mut Errors) -> Option<Value> {
    if text.trim().is_empty() {
        errs.add("", "the manifest is empty");
        return None;
    }
    if source_name.ends_with(".json") || text.trim_start().starts_with('{') {
        return match serde_json::from_str(text) {
            Ok(v) => Some(v),
            Err(e) => {
                errs.add("", format!("invalid JSON: {e}"));
                None
            }
        };
    }
    let mut yaml: serde_yaml::Value = match serde_yaml::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            errs.add("", format!("invalid YAML: {e}"));
            return None;
        }
    };
    if let Err(e) = yaml.apply_merge() {
        errs.add("", format!("invalid YAML merge key (<<): {e}"));
        return None;
    }
    if yaml.is_null() {
        errs.add("", "the manifest is empty");
        return None;
    }
    let before = errs.len();
    let v = yaml_to_json(yaml, "", errs);
    (errs.len() == before).then_some(v)
}

/// Converts YAML to JSON: mapping keys must be scalars (taken as text), tags are refused.
fn yaml_to_json(v: serde_yaml::Value, path: &str, errs: &mut Errors) -> Value {
    use serde_yaml::Value as Y;
    match v {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_u64() {
                Value::from(i)
            } else if let Some(i) = n.as_i64() {
                Value::from(i)
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                serde_json::Number::from_f64(f).map_or_else(
                    || {
                        errs.add(path, format!("unsupported number {n}"));
                        Value::Null
                    },
                    Value::Number,
                )
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| yaml_to_json(item, &fields::index(path, i), errs))
                .collect(),
        ),
        Y::Mapping(map) => {
            let mut out = serde_json::Map::new();
            for (k, v) in map {
                let key = match k {
                    Y::String(s) => s,
                    Y::Bool(b) => b.to_string(),
                    Y::Number(n) => n.to_string(),
                    other => {
                        errs.add(
                            path,
                            format!("mapping keys must be plain text, found {other:?}"),
                        );
                        continue;
                    }
                };
                let value = yaml_to_json(v, &fields::key(path, &key), errs);
                out.insert(key, value);
            }
            Value::Object(out)
        }
        Y::Tagged(t) => {
            errs.add(
                path,
                format!("YAML tags such as {} are not supported", t.tag),
            );
            Value::Null
        }
    }
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
            "version {v:?} must be 1 to {MAX_VERSION_LEN} letters, digits, '.', '-' or '_', \
             starting with a letter or digit"
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
    fn import_check_uses_known_imports_only() {
        let m = parse("counter.yaml", COUNTER).unwrap();
        let imports = |c: &ComponentSpec| match c.name.as_str() {
            "counter" => Some(vec!["wasi:keyvalue/store@0.2.0-draft".to_string()]),
            _ => None,
        };
        let errs = check_imports(&m, imports);
        assert_eq!(errs.len(), 1);
        assert_eq!(
            errs[0].to_string(),
            "spec.components[0].traits[1]: interface wasi:keyvalue/atomics is not imported by component counter \
             (it imports: wasi:keyvalue/store@0.2.0-draft)"
        );
        assert!(check_imports(&m, |_| None).is_empty());
        let none = check_imports(&m, |_| Some(vec![]));
        assert!(
            none[0].message.ends_with("(it imports nothing)"),
            "{}",
            none[0]
        );
    }
}
