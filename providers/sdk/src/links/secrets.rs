//! Sealed config values, opened by a provider that runs on a host holding the lattice's
//! secrets key (the host hands its providers the key; see `trellis_lattice::secret`).
//! Only the configs the provider uses are opened: its own and its links' target configs.

use std::collections::BTreeMap;

use trellis_lattice::link::Config;
use trellis_lattice::secret::{self, SecretsKey};

/// The named configs merged in order (later names win) with their secrets opened; names
/// that do not exist and secrets that cannot be opened (the reason, naming config and key)
/// are returned apart.
pub fn merge_opened(
    names: &[String],
    configs: &BTreeMap<String, Config>,
    key: Option<&SecretsKey>,
) -> (Config, Vec<String>, Vec<String>) {
    let mut merged = Config::new();
    let (mut missing, mut unopened) = (Vec::new(), Vec::new());
    for name in names {
        match configs.get(name) {
            Some(c) => match secret::open_config(name, c, key) {
                Ok(opened) => merged.extend(opened),
                Err(err) => unopened.push(err.to_string()),
            },
            None => missing.push(name.clone()),
        }
    }
    (merged, missing, unopened)
}

#[cfg(test)]
mod tests {
    use trellis_lattice::secret::Secret;

    use super::*;

    #[test]
    fn opens_with_the_key_and_says_why_not_without() {
        let key = SecretsKey::generate().unwrap();
        let sealed = key
            .public()
            .seal("redis", "url", &Secret::new("redis://:pw@h:1"))
            .unwrap();
        let configs: BTreeMap<String, Config> = [
            ("redis".to_string(), [("url".to_string(), sealed)].into()),
            (
                "plain".to_string(),
                [("bucket".to_string(), "b".into())].into(),
            ),
        ]
        .into();
        let names = vec!["plain".to_string(), "redis".into(), "absent".into()];
        let (merged, missing, unopened) = merge_opened(&names, &configs, Some(&key));
        assert_eq!(merged["url"], "redis://:pw@h:1");
        assert_eq!(merged["bucket"], "b");
        assert_eq!(missing, vec!["absent".to_string()]);
        assert!(unopened.is_empty());
        let (merged, _, unopened) = merge_opened(&names, &configs, None);
        assert!(!merged.contains_key("url"));
        assert_eq!(unopened.len(), 1);
        assert!(
            unopened[0].contains("config `redis` key `url`"),
            "{unopened:?}"
        );
        assert!(!unopened[0].contains("pw@"));
    }
}
