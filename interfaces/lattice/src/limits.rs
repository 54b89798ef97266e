//! Every size and count the protocol accepts, checked once where a request is parsed (see
//! `server::requests`), and by the CLI and the manifest validator before anything is sent.
//! The README's "Limits" table lists them.

use std::collections::BTreeMap;

use crate::error::{Error, Result};

/// Characters in a component, provider, link, config, app or lattice name (see [`crate::id`]).
pub const MAX_ID_LEN: usize = 128;
/// Characters in a WIT namespace, package or interface name.
pub const MAX_WIT_NAME_LEN: usize = 64;
/// Characters in an image reference.
pub const MAX_IMAGE_REF_LEN: usize = 4096;
/// Replicas of one component on one host.
pub const MAX_REPLICAS: u32 = 10_000;
/// Named configs one start or link reads.
pub const MAX_CONFIG_NAMES: usize = 32;
/// Interfaces one link covers.
pub const MAX_LINK_INTERFACES: usize = 64;
/// Annotations on one component or provider: count, and bytes of all keys and values.
pub const MAX_ANNOTATIONS: usize = 64;
pub const MAX_ANNOTATIONS_BYTES: usize = 16 << 10;
/// One named config: keys, bytes of one value, bytes of all keys and values.
pub const MAX_CONFIG_KEYS: usize = 256;
pub const MAX_CONFIG_VALUE_BYTES: usize = 64 << 10;
pub const MAX_CONFIG_BYTES: usize = 256 << 10;
/// Labels a user may put on one host (besides the built-in `trellis.` ones).
pub const MAX_USER_LABELS: usize = 64;
/// Bytes of a key in a named config or annotation.
pub const MAX_KEY_BYTES: usize = 256;
/// Bytes of a manifest's text: with the request around it, it fits in one message of a NATS
/// server with the default 1 MiB payload limit.
pub const MAX_MANIFEST_BYTES: usize = 768 << 10;

/// Checks annotations against the limits.
pub fn check_annotations(what: &str, annotations: &BTreeMap<String, String>) -> Result<()> {
    if annotations.len() > MAX_ANNOTATIONS {
        return Err(Error::invalid(
            what,
            &format!("{} annotations", annotations.len()),
            format!("at most {MAX_ANNOTATIONS} annotations are accepted"),
        ));
    }
    check_pairs(
        what,
        annotations,
        MAX_ANNOTATIONS_BYTES,
        MAX_ANNOTATIONS_BYTES,
    )
}

/// Checks the pairs of one named config against the limits.
pub fn check_config(name: &str, values: &BTreeMap<String, String>) -> Result<()> {
    let what = format!("config {name}");
    if values.len() > MAX_CONFIG_KEYS {
        return Err(Error::invalid(
            &what,
            &format!("{} keys", values.len()),
            format!("at most {MAX_CONFIG_KEYS} keys are accepted"),
        ));
    }
    check_pairs(&what, values, MAX_CONFIG_VALUE_BYTES, MAX_CONFIG_BYTES)
}

fn check_pairs(
    what: &str,
    pairs: &BTreeMap<String, String>,
    max_value: usize,
    max_total: usize,
) -> Result<()> {
    let mut total = 0usize;
    for (k, v) in pairs {
        if k.is_empty() || k.len() > MAX_KEY_BYTES || k.chars().any(char::is_control) {
            return Err(Error::invalid(
                &format!("{what} key"),
                k,
                format!("must be 1 to {MAX_KEY_BYTES} bytes without control characters"),
            ));
        }
        if v.len() > max_value {
            return Err(Error::invalid(
                &format!("{what} value of {k}"),
                &format!("{} bytes", v.len()),
                format!("must be at most {max_value} bytes"),
            ));
        }
        total += k.len() + v.len();
    }
    if total > max_total {
        return Err(Error::invalid(
            what,
            &format!("{total} bytes"),
            format!("keys and values must be at most {max_total} bytes together"),
        ));
    }
    Ok(())
}

/// Checks a count against its limit.
pub fn check_count(what: &str, count: usize, max: usize) -> Result<()> {
    if count > max {
        return Err(Error::invalid(
            what,
            &count.to_string(),
            format!("at most {max} are accepted"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_bounded() {
        let ok: BTreeMap<String, String> = [("bucket".to_string(), "b".to_string())].into();
        assert!(check_config("c", &ok).is_ok());
        let big: BTreeMap<String, String> =
            [("k".to_string(), "x".repeat(MAX_CONFIG_VALUE_BYTES + 1))].into();
        let err = check_config("c", &big).unwrap_err().to_string();
        assert!(
            err.contains("config c value of k") && err.contains("65537 bytes"),
            "{err}"
        );
        let many: BTreeMap<String, String> = (0..MAX_ANNOTATIONS + 1)
            .map(|i| (format!("k{i}"), String::new()))
            .collect();
        assert!(check_annotations("annotations", &many).is_err());
        let heavy: BTreeMap<String, String> = (0..4)
            .map(|i| (format!("k{i}"), "x".repeat(6000)))
            .collect();
        let err = check_annotations("annotations", &heavy)
            .unwrap_err()
            .to_string();
        assert!(err.contains("together"), "{err}");
        let bad_key: BTreeMap<String, String> = [("a\nb".to_string(), String::new())].into();
        assert!(check_config("c", &bad_key).is_err());
    }
}
