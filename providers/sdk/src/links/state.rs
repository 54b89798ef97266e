//! The links that target one provider and their merged target config, as a pure state
//! machine fed by the lattice's link and config changes. Every change returns the
//! [`LinkEvent`]s the provider should hear about.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use trellis_lattice::link::{Config, Link, LinkKey};
use trellis_lattice::secret::SecretsKey;

/// A link that targets this provider, with the config it hands the provider (secrets opened:
/// `Debug` shows its keys only).
#[derive(Clone, PartialEq, Eq)]
pub struct LinkInfo {
    pub link: Link,
    /// The link's `target_config` names merged in order (later names win).
    pub target_config: Config,
    /// Names in `target_config` that no stored config has (calls on the link fail until
    /// they exist).
    pub missing_config: Vec<String>,
    /// Why sealed values of `target_config` could not be opened (calls on the link fail).
    pub unopened: Vec<String>,
}

impl std::fmt::Debug for LinkInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkInfo")
            .field("link", &self.link)
            .field("target_config_keys", &self.target_config.keys())
            .field("missing_config", &self.missing_config)
            .field("unopened", &self.unopened)
            .finish()
    }
}

impl LinkInfo {
    pub fn key(&self) -> LinkKey {
        self.link.key()
    }

    /// A value of the merged target config.
    pub fn config(&self, key: &str) -> Option<&str> {
        self.target_config.get(key).map(String::as_str)
    }
}

/// What a provider hears about its links.
#[derive(Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// A link now targets this provider, or its target config changed.
    Put(LinkInfo),
    /// A link no longer targets this provider (deleted or retargeted).
    Deleted(LinkInfo),
    /// The provider's own merged config changed.
    ConfigChanged(Config),
}

impl std::fmt::Debug for LinkEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LinkEvent::Put(info) => f.debug_tuple("Put").field(info).finish(),
            LinkEvent::Deleted(info) => f.debug_tuple("Deleted").field(info).finish(),
            // Keys only: the values may be opened secrets.
            LinkEvent::ConfigChanged(c) => f.debug_tuple("ConfigChanged").field(&c.keys()).finish(),
        }
    }
}

/// Merges the named configs in order; names that do not exist are returned apart.
pub fn merge_configs(
    names: &[String],
    configs: &BTreeMap<String, Config>,
) -> (Config, Vec<String>) {
    let mut merged = Config::new();
    let mut missing = Vec::new();
    for name in names {
        match configs.get(name) {
            Some(c) => merged.extend(c.iter().map(|(k, v)| (k.clone(), v.clone()))),
            None => missing.push(name.clone()),
        }
    }
    (merged, missing)
}

/// The link with its target config merged and its secrets opened with `key`.
pub fn resolve(
    link: &Link,
    configs: &BTreeMap<String, Config>,
    key: Option<&SecretsKey>,
) -> LinkInfo {
    let (target_config, missing_config, unopened) =
        super::secrets::merge_opened(&link.target_config, configs, key);
    LinkInfo {
        link: link.clone(),
        target_config,
        missing_config,
        unopened,
    }
}

/// Links of one provider and every named config of the lattice.
#[derive(Debug)]
pub struct LinkState {
    provider_id: String,
    own_config_names: Vec<String>,
    own_config: Config,
    configs: BTreeMap<String, Config>,
    /// The host's secrets key, when it holds one: opens sealed values of this provider's
    /// own and link target configs.
    secrets: Option<Arc<SecretsKey>>,
    links: HashMap<LinkKey, LinkInfo>,
    /// Links that stopped targeting this provider recently: calls a host sent before it saw
    /// the change still find them, so retargeting fails no call.
    retired: HashMap<LinkKey, (LinkInfo, Instant)>,
    grace: Duration,
}

impl LinkState {
    pub fn new(provider_id: &str, own_config_names: Vec<String>, grace: Duration) -> Self {
        Self {
            provider_id: provider_id.to_string(),
            own_config_names,
            own_config: Config::new(),
            configs: BTreeMap::new(),
            secrets: None,
            links: HashMap::new(),
            retired: HashMap::new(),
            grace,
        }
    }

    /// Opens sealed config values with `key` from now on.
    pub fn with_secrets(mut self, key: Option<Arc<SecretsKey>>) -> Self {
        self.secrets = key;
        self
    }

    pub fn secrets(&self) -> Option<&SecretsKey> {
        self.secrets.as_deref()
    }

    /// The provider's own config, merged and opened (unopened secrets logged, left out).
    fn merged_own(&self) -> Config {
        let (own, _missing, unopened) =
            super::secrets::merge_opened(&self.own_config_names, &self.configs, self.secrets());
        for err in unopened {
            tracing::warn!(%err, "a secret of the provider's own config cannot be opened");
        }
        own
    }

    pub fn provider_id(&self) -> &str {
        &self.provider_id
    }

    /// The provider's own merged config.
    pub fn own_config(&self) -> &Config {
        &self.own_config
    }

    pub fn own_config_names(&self) -> &[String] {
        &self.own_config_names
    }

    /// Names of the provider's own config that no stored config has.
    pub fn missing_own_config(&self) -> Vec<String> {
        merge_configs(&self.own_config_names, &self.configs).1
    }

    /// Every link targeting the provider.
    pub fn links(&self) -> impl Iterator<Item = &LinkInfo> {
        self.links.values()
    }

    /// The link with this identity, if it targets the provider now or did within the grace
    /// period.
    pub fn lookup(&self, key: &LinkKey, now: Instant) -> Option<&LinkInfo> {
        self.links.get(key).or_else(|| {
            self.retired
                .get(key)
                .filter(|(_, since)| now.saturating_duration_since(*since) < self.grace)
                .map(|(info, _)| info)
        })
    }

    fn prune(&mut self, now: Instant) {
        let grace = self.grace;
        self.retired
            .retain(|_, (_, since)| now.saturating_duration_since(*since) < grace);
    }

    /// A link was put: it targets this provider (added or changed) or not (retargeted away).
    pub fn put_link(&mut self, link: Link, now: Instant) -> Vec<LinkEvent> {
        self.prune(now);
        if link.target_id != self.provider_id {
            return self.delete_link(&link.key(), now);
        }
        let info = resolve(&link, &self.configs, self.secrets.as_deref());
        let key = link.key();
        self.retired.remove(&key);
        if self.links.get(&key) == Some(&info) {
            return Vec::new();
        }
        self.links.insert(key, info.clone());
        vec![LinkEvent::Put(info)]
    }

    pub fn delete_link(&mut self, key: &LinkKey, now: Instant) -> Vec<LinkEvent> {
        self.prune(now);
        match self.links.remove(key) {
            Some(info) => {
                self.retired.insert(key.clone(), (info.clone(), now));
                vec![LinkEvent::Deleted(info)]
            }
            None => Vec::new(),
        }
    }

    pub fn put_config(&mut self, name: String, config: Config) -> Vec<LinkEvent> {
        if self.configs.get(&name) == Some(&config) {
            return Vec::new();
        }
        self.configs.insert(name.clone(), config);
        self.config_changed(&name)
    }

    pub fn delete_config(&mut self, name: &str) -> Vec<LinkEvent> {
        if self.configs.remove(name).is_none() {
            return Vec::new();
        }
        self.config_changed(name)
    }

    /// Re-resolves what references `name`.
    fn config_changed(&mut self, name: &str) -> Vec<LinkEvent> {
        let mut events = Vec::new();
        let (configs, secrets) = (&self.configs, self.secrets.as_deref());
        for info in self.links.values_mut() {
            if info.link.target_config.iter().any(|n| n == name) {
                let fresh = resolve(&info.link, configs, secrets);
                if fresh != *info {
                    *info = fresh.clone();
                    events.push(LinkEvent::Put(fresh));
                }
            }
        }
        if self.own_config_names.iter().any(|n| n == name) {
            let own = self.merged_own();
            if own != self.own_config {
                self.own_config = own.clone();
                events.push(LinkEvent::ConfigChanged(own));
            }
        }
        events
    }

    /// Replaces everything with a fresh snapshot (at start, or after a watch was lost).
    pub fn replace_all(
        &mut self,
        links: Vec<Link>,
        configs: BTreeMap<String, Config>,
        now: Instant,
    ) -> Vec<LinkEvent> {
        self.prune(now);
        self.configs = configs;
        let mut events = Vec::new();
        let own = self.merged_own();
        if own != self.own_config {
            self.own_config = own.clone();
            events.push(LinkEvent::ConfigChanged(own));
        }
        let fresh: HashMap<LinkKey, LinkInfo> = links
            .into_iter()
            .filter(|l| l.target_id == self.provider_id)
            .map(|l| (l.key(), resolve(&l, &self.configs, self.secrets.as_deref())))
            .collect();
        let gone: Vec<LinkKey> = self
            .links
            .keys()
            .filter(|k| !fresh.contains_key(*k))
            .cloned()
            .collect();
        for key in gone {
            events.extend(self.delete_link(&key, now));
        }
        let mut fresh: Vec<_> = fresh.into_iter().collect();
        fresh.sort_by(|a, b| a.0.cmp(&b.0));
        for (key, info) in fresh {
            self.retired.remove(&key);
            if self.links.get(&key) != Some(&info) {
                self.links.insert(key, info.clone());
                events.push(LinkEvent::Put(info));
            }
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(source: &str, target: &str, name: &str, configs: &[&str]) -> Link {
        Link {
            source_id: source.into(),
            target_id: target.into(),
            name: name.into(),
            wit_namespace: "wasi".into(),
            wit_package: "keyvalue".into(),
            interfaces: vec!["store".into(), "atomics".into()],
            source_config: vec![],
            target_config: configs.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn config(pairs: &[(&str, &str)]) -> Config {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn state() -> LinkState {
        LinkState::new("kv", vec!["own".into()], Duration::from_secs(10))
    }

    #[test]
    fn merge_in_order_and_report_missing() {
        let mut all = BTreeMap::new();
        all.insert("a".to_string(), config(&[("bucket", "a"), ("x", "1")]));
        all.insert("b".to_string(), config(&[("bucket", "b")]));
        let (merged, missing) = merge_configs(&["a".into(), "nope".into(), "b".into()], &all);
        assert_eq!(merged, config(&[("bucket", "b"), ("x", "1")]));
        assert_eq!(missing, vec!["nope".to_string()]);
        let (merged, _) = merge_configs(&["b".into(), "a".into()], &all);
        assert_eq!(merged.get("bucket").map(String::as_str), Some("a"));
    }

    #[test]
    fn keeps_only_links_to_this_provider() {
        let now = Instant::now();
        let mut s = state();
        assert!(s
            .put_link(link("counter", "other", "default", &[]), now)
            .is_empty());
        let events = s.put_link(link("counter", "kv", "default", &[]), now);
        assert!(matches!(events.as_slice(), [LinkEvent::Put(i)] if i.link.source_id == "counter"));
        // The same link again is no news.
        assert!(s
            .put_link(link("counter", "kv", "default", &[]), now)
            .is_empty());
        assert_eq!(s.links().count(), 1);
        // Two names from the same source are two links.
        s.put_link(link("counter", "kv", "cache", &[]), now);
        assert_eq!(s.links().count(), 2);
    }

    #[test]
    fn config_changes_reresolve_links_that_reference_them() {
        let now = Instant::now();
        let mut s = state();
        let l = link("counter", "kv", "default", &["bucket-a"]);
        let events = s.put_link(l.clone(), now);
        let [LinkEvent::Put(info)] = events.as_slice() else {
            panic!("{events:?}")
        };
        assert_eq!(info.missing_config, vec!["bucket-a".to_string()]);
        let events = s.put_config("bucket-a".into(), config(&[("bucket", "A")]));
        let [LinkEvent::Put(info)] = events.as_slice() else {
            panic!("{events:?}")
        };
        assert!(info.missing_config.is_empty());
        assert_eq!(info.config("bucket"), Some("A"));
        // An unrelated config changes nothing.
        assert!(s
            .put_config("other".into(), config(&[("k", "v")]))
            .is_empty());
        // Deleting the referenced config makes it missing again.
        let events = s.delete_config("bucket-a");
        assert!(
            matches!(events.as_slice(), [LinkEvent::Put(i)] if i.missing_config == ["bucket-a"])
        );
    }

    #[test]
    fn own_config_follows_its_names() {
        let now = Instant::now();
        let mut s = state();
        let events = s.put_config("own".into(), config(&[("url", "redis://x")]));
        assert_eq!(
            events,
            vec![LinkEvent::ConfigChanged(config(&[("url", "redis://x")]))]
        );
        assert_eq!(
            s.own_config().get("url").map(String::as_str),
            Some("redis://x")
        );
        let events = s.replace_all(vec![], BTreeMap::new(), now);
        assert_eq!(events, vec![LinkEvent::ConfigChanged(Config::new())]);
    }

    #[test]
    fn retargeted_links_stay_resolvable_for_the_grace_period() {
        let now = Instant::now();
        let mut s = state();
        let l = link("counter", "kv", "default", &[]);
        s.put_link(l.clone(), now);
        let mut moved = l.clone();
        moved.target_id = "redis".into();
        let events = s.put_link(moved, now);
        assert!(matches!(events.as_slice(), [LinkEvent::Deleted(_)]));
        assert_eq!(s.links().count(), 0);
        assert!(s.lookup(&l.key(), now + Duration::from_secs(1)).is_some());
        assert!(s.lookup(&l.key(), now + Duration::from_secs(11)).is_none());
        // Coming back clears the retirement.
        s.put_link(l.clone(), now);
        assert!(s.lookup(&l.key(), now + Duration::from_secs(60)).is_some());
    }

    #[test]
    fn snapshot_replaces_and_reports_differences() {
        let now = Instant::now();
        let mut s = state();
        s.put_link(link("a", "kv", "default", &[]), now);
        s.put_link(link("b", "kv", "default", &[]), now);
        let mut configs = BTreeMap::new();
        configs.insert("cfg".to_string(), config(&[("bucket", "B")]));
        let events = s.replace_all(
            vec![
                link("b", "kv", "default", &["cfg"]),
                link("c", "kv", "default", &[]),
                link("d", "elsewhere", "default", &[]),
            ],
            configs,
            now,
        );
        let mut deleted = vec![];
        let mut put = vec![];
        for e in events {
            match e {
                LinkEvent::Deleted(i) => deleted.push(i.link.source_id),
                LinkEvent::Put(i) => put.push(i.link.source_id),
                LinkEvent::ConfigChanged(_) => {}
            }
        }
        assert_eq!(deleted, vec!["a".to_string()]);
        assert_eq!(put, vec!["b".to_string(), "c".to_string()]);
        assert_eq!(s.links().count(), 2);
    }
}
