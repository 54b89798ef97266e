//! Manifest text before it is a manifest: bytes that must be UTF-8, read from a file no
//! larger than a manifest may be, and YAML (or JSON) with every error at its line and column,
//! including the ones serde_yaml does not place: a second document, aliases that expand
//! without end.

use std::path::Path;

use serde_json::Value;
use trellis_lattice::image::local;
use trellis_lattice::limits::MAX_MANIFEST_BYTES;

use crate::errors::{ValidationError, ValidationErrors};
use crate::fields::{self, Errors};

/// Reads a manifest file: a regular file of at most [`MAX_MANIFEST_BYTES`], in UTF-8.
pub fn read_file(path: &Path) -> Result<String, ValidationErrors> {
    let source_name = path.display().to_string();
    let one = |message: String| {
        ValidationErrors::new(
            &source_name,
            vec![ValidationError {
                path: String::new(),
                message,
            }],
        )
    };
    let bytes = local::read_blocking(path, MAX_MANIFEST_BYTES as u64).map_err(|e| match e {
        local::LocalReadError::TooLarge { .. } => one(format!(
            "the manifest is larger than the {MAX_MANIFEST_BYTES} bytes accepted (it must fit in one NATS message)"
        )),
        other => one(other.to_string()),
    })?;
    text_of(&source_name, &bytes).map(str::to_string)
}

/// YAML or JSON text to a JSON value, reporting syntax errors with line and column.
pub(crate) fn parse_syntax(source_name: &str, text: &str, errs: &mut Errors) -> Option<Value> {
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
            errs.add("", yaml_error(text, &e));
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

/// A YAML error with its place in the text: serde_yaml gives one for syntax errors, not for
/// a second document or for aliases that expand without end, which are found here.
fn yaml_error(text: &str, e: &serde_yaml::Error) -> String {
    let message = e.to_string();
    if e.location().is_some() {
        return format!("invalid YAML: {message}");
    }
    let line_of = |pred: &dyn Fn(&str) -> bool| {
        text.lines()
            .enumerate()
            .find(|(_, l)| pred(l))
            .map(|(i, _)| i + 1)
    };
    if message.contains("more than one document") {
        // The marker that starts the second document (the first may open with one too).
        let starts: Vec<usize> = text
            .lines()
            .enumerate()
            .filter(|(_, l)| l.starts_with("---"))
            .map(|(i, _)| i + 1)
            .collect();
        let content_before = |line: usize| {
            text.lines().take(line - 1).any(|l| {
                !l.trim().is_empty() && !l.trim_start().starts_with('#') && !l.starts_with("---")
            })
        };
        if let Some(line) = starts.into_iter().find(|l| content_before(*l)) {
            return format!(
                "line {line} column 1: a second YAML document begins here; a manifest is one document"
            );
        }
    }
    if message.contains("repetition limit") || message.contains("recursion limit") {
        let alias = |l: &str| {
            l.split(|c: char| c.is_whitespace() || c == '[' || c == ',' || c == '{')
                .any(|w| w.len() > 1 && w.starts_with('*'))
        };
        if let Some(line) = line_of(&alias) {
            return format!(
                "line {line}: aliases expand beyond what a manifest may hold ({message})"
            );
        }
    }
    format!("invalid YAML: {message}")
}

/// Manifest bytes as text: UTF-8, or an error at the line and column of the first byte that
/// is not.
pub fn text_of<'a>(source_name: &str, bytes: &'a [u8]) -> Result<&'a str, ValidationErrors> {
    std::str::from_utf8(bytes).map_err(|e| {
        let valid = &bytes[..e.valid_up_to()];
        let line = valid.iter().filter(|b| **b == b'\n').count() + 1;
        let start = valid.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        let column = std::str::from_utf8(&valid[start..]).map_or(1, |s| s.chars().count() + 1);
        ValidationErrors::new(
            source_name,
            vec![ValidationError {
                path: String::new(),
                message: format!("line {line} column {column}: the manifest is not valid UTF-8"),
            }],
        )
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse;

    #[test]
    fn yaml_bombs_second_documents_and_bad_bytes_are_located() {
        let bomb = "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\nh: [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n";
        let err = parse("bomb.yaml", bomb).unwrap_err().to_string();
        assert!(
            err.starts_with("bomb.yaml: line 2: aliases expand"),
            "{err}"
        );

        let two =
            "# app\n---\napiVersion: core.oam.dev/v1beta1\nkind: Application\n---\nkind: Other\n";
        let err = parse("two.yaml", two).unwrap_err().to_string();
        assert_eq!(
            err,
            "two.yaml: line 5 column 1: a second YAML document begins here; a manifest is one document"
        );

        let bytes = b"apiVersion: x\nkind: Appli\xffcation\n";
        let err = text_of("bad.yaml", bytes).unwrap_err().to_string();
        assert_eq!(
            err,
            "bad.yaml: line 2 column 12: the manifest is not valid UTF-8"
        );

        let big = format!(
            "a: \"{}\"\n",
            "x".repeat(trellis_lattice::limits::MAX_MANIFEST_BYTES)
        );
        let err = parse("big.yaml", &big).unwrap_err().to_string();
        assert!(err.contains("at most 786432 are accepted"), "{err}");
    }
}
