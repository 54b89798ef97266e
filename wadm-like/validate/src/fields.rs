//! Reading a generic JSON value by hand, so every mistake is reported with its location and
//! the walk goes on to find the next one (serde's derive stops at the first error and cannot
//! say "did you mean").

use serde_json::{Map, Value};

use super::errors::ValidationError;

/// Errors found so far.
#[derive(Debug, Default)]
pub(crate) struct Errors(pub Vec<ValidationError>);

impl Errors {
    /// Every error passes here: what it quotes of the manifest (`found "…"`) is cut to a
    /// short beginning, so a hostile value is never repeated back whole.
    pub fn add(&mut self, path: &str, message: impl Into<String>) {
        self.0.push(ValidationError {
            path: trellis_lattice::error::bounded(path),
            message: trellis_lattice::error::bounded(&message.into()),
        });
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }
}

/// `path.key`
pub(crate) fn key(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// `path[i]`
pub(crate) fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// A short description of what was found, for "must be X, found Y".
pub(crate) fn describe(v: &Value) -> String {
    match v {
        Value::Null => "nothing (null)".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) if s.chars().count() > 60 => {
            let head: String = s.chars().take(57).collect();
            format!("{:?}", format!("{head}..."))
        }
        Value::String(s) => format!("{s:?}"),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "a mapping".into(),
    }
}

/// Words that are not close in spelling but that people write for our fields (wadm and
/// Kubernetes habits).
const ALIASES: &[(&str, &str)] = &[
    ("replicas", "instances"),
    ("count", "instances"),
    ("labels", "requirements"),
    ("constraints", "requirements"),
    ("actor", "component"),
    ("provider", "capability"),
    ("linkdef", "link"),
    ("target_config", "target.config"),
    ("source_config", "source.config"),
    ("wit_namespace", "namespace"),
    ("wit_package", "package"),
];

/// The allowed word closest to `found`, if it is close enough to be a likely typo.
pub(crate) fn did_you_mean(found: &str, allowed: &[&str]) -> Option<String> {
    let lower = found.to_ascii_lowercase();
    if let Some((_, to)) = ALIASES.iter().find(|(from, _)| *from == lower) {
        if allowed
            .iter()
            .any(|a| a == to || to.starts_with(&format!("{a}.")))
        {
            return Some((*to).to_string());
        }
    }
    allowed
        .iter()
        .map(|a| (levenshtein(&lower, &a.to_ascii_lowercase()), *a))
        .filter(|(d, a)| *d <= (a.len() / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, a)| a.to_string())
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// " (did you mean `x`?)" or "".
pub(crate) fn hint(found: &str, allowed: &[&str]) -> String {
    match did_you_mean(found, allowed) {
        Some(s) => format!(" (did you mean `{s}`?)"),
        None => String::new(),
    }
}

/// A mapping being read. Unknown keys are reported when it is opened.
pub(crate) struct Obj<'a> {
    map: &'a Map<String, Value>,
    pub path: String,
}

impl<'a> Obj<'a> {
    /// Opens `v` as a mapping with the given keys, reporting a wrong type or unknown keys.
    pub fn open(
        v: &'a Value,
        path: &str,
        what: &str,
        allowed: &[&str],
        errs: &mut Errors,
    ) -> Option<Self> {
        let Value::Object(map) = v else {
            errs.add(
                path,
                format!("{what} must be a mapping, found {}", describe(v)),
            );
            return None;
        };
        for k in map.keys() {
            if !allowed.contains(&k.as_str()) {
                // A key is the manifest's text: a long one is not repeated back whole.
                let shown = trellis_lattice::error::shorten(k);
                let msg = match did_you_mean(k, allowed) {
                    Some(s) => format!("unknown field `{shown}` in {what} (did you mean `{s}`?)"),
                    None => format!(
                        "unknown field `{shown}` in {what}; expected one of: {}",
                        allowed.join(", ")
                    ),
                };
                errs.add(&self::key(path, &shown), msg);
            }
        }
        Some(Obj {
            map,
            path: path.to_string(),
        })
    }

    /// The value at `k`; `null` counts as absent (`id:` with nothing after it).
    pub fn get(&self, k: &str) -> Option<&'a Value> {
        self.map.get(k).filter(|v| !v.is_null())
    }

    /// Whether `k` is present, even as `null`.
    pub fn has(&self, k: &str) -> bool {
        self.map.contains_key(k)
    }

    pub fn at(&self, k: &str) -> String {
        key(&self.path, k)
    }

    /// A required field; reports it missing (or null).
    pub fn require(&self, k: &str, what: &str, errs: &mut Errors) -> Option<&'a Value> {
        match self.map.get(k) {
            None => {
                errs.add(&self.path, format!("missing required field `{k}` ({what})"));
                None
            }
            Some(Value::Null) => {
                errs.add(&self.at(k), format!("`{k}` has no value ({what})"));
                None
            }
            Some(v) => Some(v),
        }
    }

    /// A required string field.
    pub fn req_str(&self, k: &str, what: &str, errs: &mut Errors) -> Option<&'a str> {
        let v = self.require(k, what, errs)?;
        string(v, &self.at(k), what, errs)
    }

    /// An optional string field.
    pub fn opt_str(&self, k: &str, what: &str, errs: &mut Errors) -> Option<&'a str> {
        string(self.get(k)?, &self.at(k), what, errs)
    }
}

/// A string, or an error naming what was found.
pub(crate) fn string<'a>(
    v: &'a Value,
    path: &str,
    what: &str,
    errs: &mut Errors,
) -> Option<&'a str> {
    match v {
        Value::String(s) => Some(s),
        other => {
            errs.add(
                path,
                format!("{what} must be a string, found {}", describe(other)),
            );
            None
        }
    }
}

/// A string where YAML may have turned the text into a number or boolean (`version: 2`,
/// `gpio: true`): integers and booleans are taken as written; other numbers are refused
/// because their text may have changed (`1.10` reads as 1.1).
pub(crate) fn lenient_string(
    v: &Value,
    path: &str,
    what: &str,
    errs: &mut Errors,
) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        Value::Number(n) => {
            errs.add(
                path,
                format!("{what} must be a string, found the number {n} (put quotes around it)"),
            );
            None
        }
        other => {
            errs.add(
                path,
                format!("{what} must be a string, found {}", describe(other)),
            );
            None
        }
    }
}

/// A non-negative integer no larger than `max`.
pub(crate) fn bounded_u32(
    v: &Value,
    path: &str,
    what: &str,
    max: u32,
    errs: &mut Errors,
) -> Option<u32> {
    let n = match v {
        Value::Number(n) => n.as_u64(),
        _ => None,
    };
    match n {
        Some(n) if n <= u64::from(max) => u32::try_from(n).ok(),
        Some(n) => {
            errs.add(path, format!("{what} must be at most {max}, found {n}"));
            None
        }
        None => {
            errs.add(
                path,
                format!(
                    "{what} must be a non-negative integer, found {}",
                    describe(v)
                ),
            );
            None
        }
    }
}

/// A list. A mapping where a list belongs is the classic missing `- `, so say so.
pub(crate) fn list<'a>(
    v: &'a Value,
    path: &str,
    what: &str,
    errs: &mut Errors,
) -> Option<&'a Vec<Value>> {
    match v {
        Value::Array(items) => Some(items),
        Value::Object(_) => {
            errs.add(
                path,
                format!("{what} must be a list, found a mapping (start each entry with `- `)"),
            );
            None
        }
        other => {
            errs.add(
                path,
                format!("{what} must be a list, found {}", describe(other)),
            );
            None
        }
    }
}

/// A mapping of strings to strings; `check` validates each key and value.
pub(crate) fn string_map(
    v: &Value,
    path: &str,
    what: &str,
    errs: &mut Errors,
    check: impl Fn(&str, &str) -> Result<(), String>,
) -> Option<std::collections::BTreeMap<String, String>> {
    let Value::Object(map) = v else {
        errs.add(
            path,
            format!("{what} must be a mapping of strings, found {}", describe(v)),
        );
        return None;
    };
    let before = errs.len();
    let mut out = std::collections::BTreeMap::new();
    for (k, v) in map {
        let at = key(path, k);
        let Some(value) = lenient_string(v, &at, &format!("{what} `{k}`"), errs) else {
            continue;
        };
        if let Err(e) = check(k, &value) {
            errs.add(&at, e);
            continue;
        }
        out.insert(k.clone(), value);
    }
    (errs.len() == before).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        let allowed = ["name", "type", "properties", "traits"];
        assert_eq!(
            did_you_mean("propertis", &allowed).as_deref(),
            Some("properties")
        );
        assert_eq!(did_you_mean("Name", &allowed).as_deref(), Some("name"));
        assert_eq!(did_you_mean("trait", &allowed).as_deref(), Some("traits"));
        assert_eq!(did_you_mean("zzz", &allowed), None);
        assert_eq!(
            did_you_mean("replicas", &["instances", "spread"]).as_deref(),
            Some("instances")
        );
        assert_eq!(
            did_you_mean("target_config", &["target", "name"]).as_deref(),
            Some("target.config")
        );
        assert_eq!(levenshtein("kitten", "sitting"), 3);
    }

    #[test]
    fn numbers_and_strings() {
        let mut errs = Errors::default();
        let v: Value = serde_json::json!(-1);
        assert_eq!(bounded_u32(&v, "p", "x", 10, &mut errs), None);
        assert_eq!(
            errs.0[0].message,
            "x must be a non-negative integer, found -1"
        );
        assert_eq!(
            bounded_u32(&serde_json::json!(11), "p", "x", 10, &mut errs),
            None
        );
        assert_eq!(errs.0[1].message, "x must be at most 10, found 11");
        assert_eq!(
            bounded_u32(&serde_json::json!(10), "p", "x", 10, &mut errs),
            Some(10)
        );
        assert_eq!(
            lenient_string(&serde_json::json!(true), "p", "x", &mut errs).as_deref(),
            Some("true")
        );
        assert_eq!(
            lenient_string(&serde_json::json!(1.1), "p", "x", &mut errs),
            None
        );
        assert!(errs.0[2].message.contains("put quotes around it"));
    }
}
