//! What a component may reach beyond its linked imports. By default nothing: no environment
//! variables, no files, no sockets, no outgoing HTTP and a wall clock stopped at the Unix
//! epoch; only stdout and stderr, which go to the host's log. A start request or a manifest
//! grants more, one thing at a time, and the host checks each grant against what its operator
//! allows (a preopened directory must lie under one the host was told to share).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Environment variables one component may be given.
pub const MAX_ENV: usize = 64;
/// The longest environment value, in bytes.
pub const MAX_ENV_VALUE: usize = 4096;
/// Directories one component may be given.
pub const MAX_PREOPENS: usize = 16;
/// Outgoing HTTP destinations one component may be given.
pub const MAX_OUTBOUND: usize = 64;
const MAX_PATH: usize = 1024;
const MAX_OUTBOUND_LEN: usize = 256;

/// The grants of one component.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grants {
    /// Environment variables the component sees, and only these.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Host directories the component sees, each at a path of its own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preopens: Vec<Preopen>,
    /// Where its outgoing HTTP requests may go: `https://api.example.com`,
    /// `http://10.0.0.5:8080`, `*.example.com`, `https://*.example.com:*` (see [`Outbound`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_outbound_hosts: Vec<String>,
    /// Whether it reads the real wall clock (otherwise it reads the Unix epoch; the monotonic
    /// clock always works).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub wall_clock: bool,
}

/// A host directory shown to a component.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preopen {
    /// The directory on the host, an absolute path.
    pub host: String,
    /// Where the component sees it (default: the same path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest: Option<String>,
    /// May the component create, change and remove files there.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub writable: bool,
}

impl Preopen {
    /// `HOST[:GUEST][:rw|:ro]`, the form the CLI and manifests take.
    pub fn parse(spec: &str) -> Result<Self> {
        let (rest, writable) = match spec.rsplit_once(':') {
            Some((rest, "rw")) => (rest, true),
            Some((rest, "ro")) => (rest, false),
            _ => (spec, false),
        };
        let (host, guest) = match rest.split_once(':') {
            Some((host, guest)) => (host, Some(guest.to_string())),
            None => (rest, None),
        };
        let preopen = Self {
            host: host.to_string(),
            guest,
            writable,
        };
        preopen.check()?;
        Ok(preopen)
    }

    /// The path the component sees.
    pub fn guest_path(&self) -> &str {
        self.guest.as_deref().unwrap_or(&self.host)
    }

    fn check(&self) -> Result<()> {
        for (field, path) in [
            ("preopen host path", &self.host[..]),
            ("preopen guest path", self.guest_path()),
        ] {
            let bad = |reason: &str| Err(Error::invalid(field, path, reason));
            if !path.starts_with('/') {
                return bad("must be an absolute path");
            }
            if path.len() > MAX_PATH || path.contains('\0') {
                return bad("must be at most 1024 bytes without NUL");
            }
            if path.split('/').any(|part| part == "..") {
                return bad("must not contain `..`");
            }
        }
        Ok(())
    }
}

/// One allowed destination of outgoing HTTP: `[SCHEME://]HOST[:PORT]`. `HOST` is a name or an
/// IPv4 address, `*` (any host) or `*.SUFFIX` (any name under SUFFIX, not SUFFIX
/// itself); `PORT` is a number or `*`. Without a scheme both `http` and `https` are allowed; without a port,
/// the scheme's default port (80 or 443).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outbound {
    scheme: Option<String>,
    host: String,
    port: Option<u16>,
    any_port: bool,
}

impl Outbound {
    pub fn parse(spec: &str) -> Result<Self> {
        let bad = |reason: &str| Err(Error::invalid("allowed outbound host", spec, reason));
        if spec.is_empty() || spec.len() > MAX_OUTBOUND_LEN {
            return bad("must be 1 to 256 characters");
        }
        let (scheme, rest) = match spec.split_once("://") {
            Some((s @ ("http" | "https"), rest)) => (Some(s.to_string()), rest),
            Some(_) => return bad("the scheme must be http or https"),
            None => (None, spec),
        };
        let (host, port, any_port) = match rest.rsplit_once(':') {
            Some((host, "*")) => (host, None, true),
            Some((host, port)) => match port.parse::<u16>() {
                Ok(p) if p > 0 => (host, Some(p), false),
                _ => return bad("the port must be 1 to 65535 or *"),
            },
            None => (rest, None, false),
        };
        let host = host.to_ascii_lowercase();
        let name = host.strip_prefix("*.").unwrap_or(&host);
        let name_ok = host == "*"
            || (!name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-')));
        if !name_ok || rest.contains('/') {
            return bad("must be [SCHEME://]HOST[:PORT], e.g. https://api.example.com or *.example.com:8443");
        }
        Ok(Self {
            scheme,
            host,
            port,
            any_port,
        })
    }

    /// Whether a request to `scheme://host:port` may go out under this rule.
    pub fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        if self.scheme.as_deref().is_some_and(|s| s != scheme) {
            return false;
        }
        let default_port = match scheme {
            "https" => 443,
            _ => 80,
        };
        let port_ok = self.any_port || self.port.unwrap_or(default_port) == port;
        let host = host.to_ascii_lowercase();
        let host_ok = match self.host.strip_prefix("*.") {
            _ if self.host == "*" => true,
            Some(suffix) => host
                .strip_suffix(suffix)
                .is_some_and(|head| head.ends_with('.') && head.len() > 1),
            None => self.host == host,
        };
        port_ok && host_ok
    }
}

impl Grants {
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }

    /// Checks every grant's syntax and count (the host then checks them against its own
    /// policy).
    pub fn check(&self) -> Result<()> {
        crate::limits::check_count("environment variables", self.env.len(), MAX_ENV)?;
        for (key, value) in &self.env {
            let key_ok = !key.is_empty()
                && key.len() <= 128
                && !key.starts_with(|c: char| c.is_ascii_digit())
                && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !key_ok {
                return Err(Error::invalid(
                    "environment variable",
                    key,
                    "names are 1 to 128 letters, digits and `_`, not starting with a digit",
                ));
            }
            if value.len() > MAX_ENV_VALUE || value.contains('\0') {
                return Err(Error::invalid(
                    "environment variable",
                    key,
                    "values are at most 4096 bytes without NUL",
                ));
            }
        }
        crate::limits::check_count("preopens", self.preopens.len(), MAX_PREOPENS)?;
        self.preopens.iter().try_for_each(Preopen::check)?;
        crate::limits::check_count(
            "allowed outbound hosts",
            self.allowed_outbound_hosts.len(),
            MAX_OUTBOUND,
        )?;
        self.outbound().map(|_| ())
    }

    /// The outgoing HTTP rules.
    pub fn outbound(&self) -> Result<Vec<Outbound>> {
        self.allowed_outbound_hosts
            .iter()
            .map(|s| Outbound::parse(s))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outbound_rules_match_scheme_host_and_port() {
        let rule = |s: &str| Outbound::parse(s).unwrap();
        assert!(rule("https://api.example.com").allows("https", "API.example.com", 443));
        assert!(!rule("https://api.example.com").allows("http", "api.example.com", 80));
        assert!(!rule("https://api.example.com").allows("https", "api.example.com", 8443));
        assert!(rule("api.example.com").allows("http", "api.example.com", 80));
        assert!(rule("http://127.0.0.1:8080").allows("http", "127.0.0.1", 8080));
        assert!(!rule("http://127.0.0.1:8080").allows("http", "127.0.0.2", 8080));
        assert!(rule("*.example.com").allows("https", "a.b.example.com", 443));
        assert!(!rule("*.example.com").allows("https", "example.com", 443));
        assert!(!rule("*.example.com").allows("https", "evilexample.com", 443));
        assert!(rule("http://*:*").allows("http", "anything", 1));
        assert!(!rule("http://*:*").allows("https", "anything", 1));
        for bad in [
            "",
            "ftp://x",
            "x:0",
            "x:99999",
            "https://x/path",
            "a b",
            "x:y",
        ] {
            let err = Outbound::parse(bad).unwrap_err().to_string();
            assert!(err.contains("allowed outbound host"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn preopens_are_absolute_without_dot_dot() {
        let p = Preopen::parse("/srv/data:/data:rw").unwrap();
        assert_eq!(
            (p.host.as_str(), p.guest_path(), p.writable),
            ("/srv/data", "/data", true)
        );
        let p = Preopen::parse("/srv/data").unwrap();
        assert_eq!((p.guest_path(), p.writable), ("/srv/data", false));
        assert!(!Preopen::parse("/srv/data:ro").unwrap().writable);
        for bad in ["srv", "/srv/../etc", "/srv:data", "/a\0b"] {
            assert!(Preopen::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn grants_are_counted_and_named() {
        let mut g = Grants::default();
        assert!(g.is_empty() && g.check().is_ok());
        g.env.insert("1X".into(), "v".into());
        assert!(g
            .check()
            .unwrap_err()
            .to_string()
            .contains("environment variable"));
        g.env.clear();
        g.env.insert("X".into(), "v".repeat(5000));
        assert!(g.check().is_err());
        g.env.clear();
        g.allowed_outbound_hosts = vec!["ok.example.com".into(); MAX_OUTBOUND + 1];
        assert!(g.check().is_err());
        let wire = serde_json::json!({"env": {"A": "1"}, "wall_clock": true, "preopens": [{"host": "/d"}]});
        let g: Grants = serde_json::from_value(wire).unwrap();
        assert!(g.check().is_ok() && g.wall_clock);
        assert!(serde_json::from_value::<Grants>(serde_json::json!({"sockets": true})).is_err());
    }
}
