//! The links this host routes imports by, kept current from the lattice's link bucket.
//!
//! Each call through an import looks its link up afresh, so a retargeted link takes effect
//! for the next call while calls already on their way finish where they started.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use trellis_lattice::kv::{self, Change, LatticeStore, LinkChange, Update};
use trellis_lattice::link::{Link, DEFAULT_LINK_NAME};

use crate::runtime::{split_interface, ImportResolver, Target};

/// How old a direct read of a source's links may be when a call finds no link in the table.
const FRESH_MAX_AGE: Duration = Duration::from_millis(250);

/// Links by source component.
#[derive(Default)]
pub struct LinkTable {
    by_source: RwLock<HashMap<String, Vec<Link>>>,
    store: std::sync::OnceLock<LatticeStore>,
    /// Recent direct reads of the store, by source, for calls that miss the table.
    fresh: tokio::sync::Mutex<HashMap<String, (tokio::time::Instant, Vec<Link>)>>,
}

impl LinkTable {
    pub fn apply(&self, change: LinkChange) {
        let mut table = self.by_source.write().unwrap_or_else(|p| p.into_inner());
        match change {
            Change::Put(link) => {
                let links = table.entry(link.source_id.clone()).or_default();
                let key = link.key();
                match links.iter_mut().find(|l| l.key() == key) {
                    Some(existing) => *existing = link,
                    None => links.push(link),
                }
            }
            Change::Deleted(key) => {
                if let Some(links) = table.get_mut(&key.source_id) {
                    links.retain(|l| l.key() != key);
                    if links.is_empty() {
                        table.remove(&key.source_id);
                    }
                }
            }
        }
    }

    pub fn replace_all(&self, links: Vec<Link>) {
        let mut fresh: HashMap<String, Vec<Link>> = HashMap::new();
        for link in links {
            fresh.entry(link.source_id.clone()).or_default().push(link);
        }
        *self.by_source.write().unwrap_or_else(|p| p.into_inner()) = fresh;
    }

    pub fn all(&self) -> Vec<Link> {
        self.by_source
            .read()
            .map(|t| t.values().flatten().cloned().collect())
            .unwrap_or_default()
    }

    /// Keeps the table current until `shutdown`: loads the links, then follows every
    /// change, reading them all again after any gap.
    pub async fn follow(self: Arc<Self>, store: LatticeStore, shutdown: CancellationToken) {
        let _ = self.store.set(store.clone());
        kv::follow(
            store.links_followed(),
            shutdown,
            move |update| match update {
                Update::Snapshot(all) => self.replace_all(all),
                Update::Change(change) => self.apply(change),
            },
        )
        .await
    }
}

/// Picks the link for one import among a source's links: the one named `default`, or the
/// only one.
fn choose(links: &[Link], source: &str, instance: &str) -> Result<Target, String> {
    let Some((package, iface)) = split_interface(instance) else {
        return Err(format!(
            "import `{instance}` is not an interface a link can name"
        ));
    };
    let candidates: Vec<&Link> = links
        .iter()
        .filter(|l| {
            l.source_id == source
                && l.package() == package
                && l.interfaces.iter().any(|i| i == iface)
        })
        .collect();
    let chosen =
        candidates
            .iter()
            .find(|l| l.name == DEFAULT_LINK_NAME)
            .or(match candidates.as_slice() {
                [only] => Some(only),
                _ => None,
            });
    match chosen {
        Some(link) => Ok(Target {
            target_id: link.target_id.clone(),
            link_name: link.name.clone(),
        }),
        None if candidates.is_empty() => Err(format!(
            "component `{source}` has no link for `{package}/{iface}` (create one with `trellis link put {source} TARGET {package} --interface {iface}`)"
        )),
        None => Err(format!(
            "component `{source}` has several links for `{package}/{iface}` ({}) and none is named `{DEFAULT_LINK_NAME}`",
            candidates.iter().map(|l| l.name.as_str()).collect::<Vec<_>>().join(", ")
        )),
    }
}

impl ImportResolver for LinkTable {
    fn resolve(&self, source: &str, instance: &str) -> Result<Target, String> {
        let table = self
            .by_source
            .read()
            .map_err(|_| "link table unavailable".to_string())?;
        let links = table.get(source).map(Vec::as_slice).unwrap_or_default();
        choose(links, source, instance)
    }

    fn resolve_fresh<'a>(
        &'a self,
        source: &'a str,
        instance: &'a str,
    ) -> futures::future::BoxFuture<'a, Result<Target, String>> {
        Box::pin(async move {
            let Some(store) = self.store.get() else {
                return self.resolve(source, instance);
            };
            let mut fresh = self.fresh.lock().await;
            let stale = fresh
                .get(source)
                .is_none_or(|(at, _)| at.elapsed() > FRESH_MAX_AGE);
            if stale {
                match store.links().await {
                    Ok(all) => {
                        let mine = all.into_iter().filter(|l| l.source_id == source).collect();
                        fresh.insert(source.to_string(), (tokio::time::Instant::now(), mine));
                    }
                    Err(err) => tracing::warn!(%err, source, "cannot read links from the store"),
                }
            }
            let links = fresh
                .get(source)
                .map(|(_, l)| l.as_slice())
                .unwrap_or_default();
            choose(links, source, instance)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(source: &str, target: &str, name: &str) -> Link {
        Link {
            source_id: source.into(),
            target_id: target.into(),
            name: name.into(),
            wit_namespace: "wasi".into(),
            wit_package: "keyvalue".into(),
            interfaces: vec!["atomics".into(), "store".into()],
            source_config: vec![],
            target_config: vec![],
        }
    }

    #[test]
    fn resolves_put_retarget_and_delete() {
        let t = LinkTable::default();
        let err = t
            .resolve("counter", "wasi:keyvalue/atomics@0.2.0-draft")
            .unwrap_err();
        assert!(
            err.contains("has no link for `wasi:keyvalue/atomics`"),
            "{err}"
        );
        t.apply(Change::Put(link("counter", "kv-nats", "default")));
        let got = t
            .resolve("counter", "wasi:keyvalue/atomics@0.2.0-draft")
            .unwrap();
        assert_eq!(got.target_id, "kv-nats");
        assert!(t
            .resolve("counter", "wasi:keyvalue/batch@0.2.0-draft")
            .is_err());
        assert!(t
            .resolve("other", "wasi:keyvalue/store@0.2.0-draft")
            .is_err());
        t.apply(Change::Put(link("counter", "kv-redis", "default")));
        assert_eq!(
            t.resolve("counter", "wasi:keyvalue/store")
                .unwrap()
                .target_id,
            "kv-redis"
        );
        assert_eq!(t.all().len(), 1);
        t.apply(Change::Deleted(link("counter", "", "default").key()));
        assert!(t.resolve("counter", "wasi:keyvalue/store").is_err());
    }

    #[test]
    fn named_links() {
        let t = LinkTable::default();
        t.apply(Change::Put(link("c", "a", "primary")));
        assert_eq!(
            t.resolve("c", "wasi:keyvalue/store").unwrap().link_name,
            "primary"
        );
        t.apply(Change::Put(link("c", "b", "secondary")));
        let err = t.resolve("c", "wasi:keyvalue/store").unwrap_err();
        assert!(err.contains("several links"), "{err}");
        t.apply(Change::Put(link("c", "d", "default")));
        assert_eq!(
            t.resolve("c", "wasi:keyvalue/store").unwrap().target_id,
            "d"
        );
    }
}
