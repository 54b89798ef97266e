//! Links (which target serves which import of a source) and named configuration.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::id;

/// The link name used when none is given.
pub const DEFAULT_LINK_NAME: &str = "default";

fn default_name() -> String {
    DEFAULT_LINK_NAME.to_string()
}

/// A link: calls from `source_id` to `wit_namespace:wit_package/{interfaces}` go to
/// `target_id`. One link per (source, namespace, package, name); putting a link with the
/// same identity and another target retargets it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Link {
    pub source_id: String,
    pub target_id: String,
    #[serde(default = "default_name")]
    pub name: String,
    pub wit_namespace: String,
    pub wit_package: String,
    pub interfaces: Vec<String>,
    /// Named configs handed to the source (e.g. an HTTP route).
    #[serde(default)]
    pub source_config: Vec<String>,
    /// Named configs handed to the target for this link (e.g. a bucket name).
    #[serde(default)]
    pub target_config: Vec<String>,
}

/// The identity of a link.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkKey {
    pub source_id: String,
    pub wit_namespace: String,
    pub wit_package: String,
    pub name: String,
}

impl LinkKey {
    /// The key under which the link is stored (one subject-safe token per part).
    pub fn storage_key(&self) -> String {
        format!(
            "{}.{}.{}.{}",
            self.source_id, self.wit_namespace, self.wit_package, self.name
        )
    }

    /// The identity a storage key names (`source.namespace.package.name`).
    pub fn from_storage_key(key: &str) -> Option<Self> {
        let mut parts = key.splitn(4, '.');
        Some(Self {
            source_id: parts.next()?.to_string(),
            wit_namespace: parts.next()?.to_string(),
            wit_package: parts.next()?.to_string(),
            name: parts.next()?.to_string(),
        })
    }
}

/// A WIT namespace or package name: lower-case words joined by `-`.
pub fn validate_wit_name(what: &str, value: &str) -> Result<()> {
    let ok = !value.is_empty()
        && value.len() <= crate::limits::MAX_WIT_NAME_LEN
        && value.split('-').all(|w| {
            !w.is_empty()
                && w.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                && w.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        });
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            what,
            value,
            "must be lower-case kebab-case words (e.g. keyvalue, incoming-handler), at most 64 characters",
        ))
    }
}

impl Link {
    pub fn key(&self) -> LinkKey {
        LinkKey {
            source_id: self.source_id.clone(),
            wit_namespace: self.wit_namespace.clone(),
            wit_package: self.wit_package.clone(),
            name: self.name.clone(),
        }
    }

    /// `namespace:package`
    pub fn package(&self) -> String {
        format!("{}:{}", self.wit_namespace, self.wit_package)
    }

    /// Whether this link covers the import `ns:pkg/iface[@version]`.
    pub fn covers(&self, import: &str) -> bool {
        let unversioned = import.split('@').next().unwrap_or(import);
        let Some((package, iface)) = unversioned.split_once('/') else {
            return false;
        };
        package == self.package() && self.interfaces.iter().any(|i| i == iface)
    }

    pub fn validate(&self) -> Result<()> {
        id::validate_component_id(&self.source_id).map_err(|_| {
            Error::invalid(
                "link source",
                &self.source_id,
                "must be a component id (letters, digits, '-', '_')",
            )
        })?;
        id::validate_component_id(&self.target_id).map_err(|_| {
            Error::invalid(
                "link target",
                &self.target_id,
                "must be a component or provider id (letters, digits, '-', '_')",
            )
        })?;
        id::validate_token("link name", &self.name)?;
        validate_wit_name("WIT namespace", &self.wit_namespace)?;
        validate_wit_name("WIT package", &self.wit_package)?;
        if self.interfaces.is_empty() {
            return Err(Error::invalid(
                "link",
                &self.package(),
                "names no interfaces",
            ));
        }
        crate::limits::check_count(
            "interfaces of a link",
            self.interfaces.len(),
            crate::limits::MAX_LINK_INTERFACES,
        )?;
        for i in &self.interfaces {
            validate_wit_name("WIT interface", i)?;
        }
        crate::limits::check_count(
            "configs of a link",
            self.source_config.len() + self.target_config.len(),
            crate::limits::MAX_CONFIG_NAMES,
        )?;
        for c in self.source_config.iter().chain(&self.target_config) {
            validate_config_name(c)?;
        }

        Ok(())
    }
}

/// Parses `namespace:package` as the CLI takes it.
pub fn parse_package(s: &str) -> Result<(String, String)> {
    let (ns, pkg) = s.split_once(':').ok_or_else(|| {
        Error::invalid(
            "WIT package",
            s,
            "expected NAMESPACE:PACKAGE (e.g. wasi:keyvalue)",
        )
    })?;
    validate_wit_name("WIT namespace", ns)?;
    validate_wit_name("WIT package", pkg)?;
    Ok((ns.to_string(), pkg.to_string()))
}

/// Named configuration: string keys and values.
pub type Config = BTreeMap<String, String>;

/// A config name is one token.
pub fn validate_config_name(name: &str) -> Result<()> {
    id::validate_token("config name", name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link() -> Link {
        Link {
            source_id: "counter".into(),
            target_id: "kv".into(),
            name: DEFAULT_LINK_NAME.into(),
            wit_namespace: "wasi".into(),
            wit_package: "keyvalue".into(),
            interfaces: vec!["atomics".into(), "store".into()],
            source_config: vec![],
            target_config: vec!["bucket".into()],
        }
    }

    #[test]
    fn covers_imports() {
        let l = link();
        assert!(l.covers("wasi:keyvalue/atomics@0.2.0-draft"));
        assert!(l.covers("wasi:keyvalue/store"));
        assert!(!l.covers("wasi:keyvalue/batch"));
        assert!(!l.covers("wasi:http/incoming-handler"));
        assert_eq!(l.key().storage_key(), "counter.wasi.keyvalue.default");
    }

    #[test]
    fn validation() {
        assert!(link().validate().is_ok());
        let mut bad = link();
        bad.interfaces.clear();
        assert!(bad.validate().is_err());
        let mut bad = link();
        bad.wit_package = "Key.Value".into();
        assert!(bad.validate().is_err());
        assert_eq!(
            parse_package("wasi:keyvalue").unwrap(),
            ("wasi".into(), "keyvalue".into())
        );
        assert!(parse_package("wasi").is_err());
        let json = serde_json::json!({"source_id":"a","target_id":"b","wit_namespace":"wasi","wit_package":"keyvalue","interfaces":["store"]});
        let l: Link = serde_json::from_value(json).unwrap();
        assert_eq!(l.name, "default");
    }
}
