//! Host labels: syntax, the built-in keys, and matching label constraints.

use std::collections::BTreeMap;

use crate::error::{Error, Result};

/// Labels of a host, sorted by key.
pub type Labels = BTreeMap<String, String>;

/// Keys under this prefix are set by the host itself and cannot be set or removed by users.
pub const BUILTIN_PREFIX: &str = "trellis.";

pub const ARCH: &str = "trellis.arch";
pub const OS: &str = "trellis.os";
pub const HOSTNAME: &str = "trellis.hostname";
pub const CPUS: &str = "trellis.cpus";
pub const MEMORY_MB: &str = "trellis.memory_mb";
/// The board's model, where its device tree names one (`Raspberry Pi 4 Model B Rev 1.4`).
pub const BOARD: &str = "trellis.board";
/// `present` when the host has at least one GPIO chip (real or simulated).
pub const GPIO: &str = "trellis.gpio";
/// The host's GPIO chips by name, comma-separated (`gpiochip0,sim0`).
pub const GPIO_CHIPS: &str = "trellis.gpio.chips";
/// The value of [`GPIO`] on a host with chips.
pub const GPIO_PRESENT: &str = "present";

const MAX_KEY_LEN: usize = 253;
/// The longest label value, in bytes.
pub const MAX_VALUE_LEN: usize = 256;

/// Whether `key` is reserved for the host's built-in labels.
pub fn is_builtin(key: &str) -> bool {
    key.starts_with(BUILTIN_PREFIX)
}

/// Checks a label key: letters, digits, `.`, `_`, `-`, `/`; starting with a letter or digit.
pub fn validate_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(Error::invalid("label key", key, "must not be empty"));
    }
    if key.len() > MAX_KEY_LEN {
        return Err(Error::invalid(
            "label key",
            key,
            format!("must be at most {MAX_KEY_LEN} characters"),
        ));
    }
    if !key.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(Error::invalid(
            "label key",
            key,
            "must start with a letter or digit",
        ));
    }
    if let Some(c) = key
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/')))
    {
        return Err(Error::invalid(
            "label key",
            key,
            format!("may only hold letters, digits, '.', '_', '-' and '/' (found {c:?})"),
        ));
    }
    Ok(())
}

/// Checks a label value: printable, at most 256 characters (may be empty).
pub fn validate_value(key: &str, value: &str) -> Result<()> {
    if value.len() > MAX_VALUE_LEN {
        return Err(Error::invalid(
            &format!("value of label {key}"),
            value,
            format!("must be at most {MAX_VALUE_LEN} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::invalid(
            &format!("value of label {key}"),
            value,
            "must not hold control characters",
        ));
    }
    Ok(())
}

/// Checks a label a user wants to set: valid syntax and not a built-in key.
pub fn validate_user_label(key: &str, value: &str) -> Result<()> {
    validate_key(key)?;
    if is_builtin(key) {
        return Err(Error::invalid(
            "label key",
            key,
            format!("keys under '{BUILTIN_PREFIX}' are built in and cannot be set or removed"),
        ));
    }
    validate_value(key, value)
}

/// Parses `key=value` as given on a command line.
pub fn parse_pair(pair: &str) -> Result<(String, String)> {
    let Some((key, value)) = pair.split_once('=') else {
        return Err(Error::invalid("label", pair, "expected KEY=VALUE"));
    };
    let key = key.trim();
    validate_key(key)?;
    validate_value(key, value)?;
    Ok((key.to_string(), value.to_string()))
}

/// Whether `labels` satisfies every constraint (exact match of each key's value).
pub fn matches(labels: &Labels, constraints: &Labels) -> bool {
    constraints
        .iter()
        .all(|(k, v)| labels.get(k).is_some_and(|have| have == v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_validate() {
        assert_eq!(
            parse_pair("tier=edge").unwrap(),
            ("tier".to_string(), "edge".to_string())
        );
        assert_eq!(parse_pair("zone=").unwrap().1, "");
        assert!(parse_pair("novalue").is_err());
        assert!(parse_pair("=x").is_err());
        assert!(parse_pair("bad key=x").is_err());
        assert!(parse_pair("k=a\nb").is_err());
        let err = validate_user_label("trellis.arch", "riscv")
            .unwrap_err()
            .to_string();
        assert!(err.contains("built in"), "{err}");
        assert!(validate_user_label("app.example.com/tier", "edge").is_ok());
    }

    #[test]
    fn constraint_matching() {
        let labels: Labels = [("tier", "edge"), ("zone", "a")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let want = |pairs: &[(&str, &str)]| -> Labels {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(matches(&labels, &Labels::new()));
        assert!(matches(&labels, &want(&[("tier", "edge")])));
        assert!(!matches(&labels, &want(&[("tier", "cloud")])));
        assert!(!matches(&labels, &want(&[("gpu", "yes")])));
    }
}
