//! State that outlives any process: links and named config, in JetStream key-value buckets
//! shared by every host, provider and manager of a lattice, and [`follow`]: the one way to
//! keep a copy of them current.

mod follow;
mod mirror;
pub mod partition;
mod state;

use std::collections::BTreeMap;

use async_nats::jetstream::kv;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt as _, StreamExt as _, TryStreamExt as _};

pub use follow::{follow, Backoff, Followed, Update};
pub use mirror::Mirror;
pub use state::{FollowedState, LatticeState, SavedState, StateCopy, OPEN_PATIENCE};

use crate::error::{Error, Result};
use crate::link::{validate_config_name, Config, Link, LinkKey};
use crate::subject::Subjects;

/// A change seen by a watcher.
#[derive(Clone, Debug, PartialEq)]
pub enum Change<K, V> {
    Put(V),
    Deleted(K),
}

pub type LinkChange = Change<LinkKey, Link>;
pub type ConfigChange = Change<String, (String, Config)>;

/// A change of either bucket, for those who follow both.
#[derive(Clone, Debug, PartialEq)]
pub enum StateChange {
    Link(LinkChange),
    Config(ConfigChange),
}

/// Every named config, by name.
pub type Configs = BTreeMap<String, Config>;

/// The link and config buckets of one lattice.
#[derive(Clone)]
pub struct LatticeStore {
    links: kv::Store,
    configs: kv::Store,
    /// Asks whether the hub is there, with the subject that tells it when the buckets are
    /// in another JetStream domain (reached across a leaf node's link).
    nats: async_nats::Client,
    hub_probe: Option<String>,
}

/// Opens a bucket, creating it on first use (several processes may race to create it).
///
/// `async_nats` 0.49's `create_key_value` first reads the account info and cannot parse the
/// answer of servers before 2.10 (Debian bookworm ships 2.9.10), so the bucket is created as
/// the stream it is (`KV_{name}` on `$KV.{name}.>`, the configuration `create_key_value`
/// builds) and then opened with `get_key_value`.
pub async fn open_bucket(
    js: &async_nats::jetstream::Context,
    name: &str,
    description: &str,
    history: i64,
) -> Result<kv::Store> {
    use async_nats::jetstream::stream;
    if let Ok(store) = js.get_key_value(name).await {
        return Ok(store);
    }
    let config = stream::Config {
        name: format!("KV_{name}"),
        description: Some(description.to_string()),
        subjects: vec![format!("$KV.{name}.>")],
        max_messages_per_subject: history.max(1),
        discard: stream::DiscardPolicy::New,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        num_replicas: 1,
        ..Default::default()
    };
    let created = js.create_stream(config).await;
    js.get_key_value(name).await.map_err(|open| {
        let why = match created {
            Err(create) => format!("{create}; {open}"),
            Ok(_) => open.to_string(),
        };
        Error::Nats(format!(
            "cannot open or create the key-value bucket {name} (is JetStream enabled on the NATS server?): {why}"
        ))
    })
}

fn decode<T: serde::de::DeserializeOwned>(what: &str, key: &str, value: &[u8]) -> Result<T> {
    serde_json::from_slice(value).map_err(|e| Error::malformed(&format!("stored {what} {key}"), e))
}

impl LatticeStore {
    /// Opens (creating on first use) the buckets of `subjects`' lattice in its JetStream
    /// domain.
    pub async fn open(nats: &async_nats::Client, subjects: &Subjects) -> Result<Self> {
        let js = subjects.jetstream(nats);
        let opened = async {
            let links = open_bucket(&js, &subjects.links_bucket(), "Trellis links", 5).await?;
            let configs =
                open_bucket(&js, &subjects.config_bucket(), "Trellis named config", 5).await?;
            Ok(Self {
                links,
                configs,
                nats: nats.clone(),
                hub_probe: subjects.js_domain_probe(),
            })
        };
        opened.await.map_err(|e: Error| match subjects.js_domain() {
            // From a leaf node, "no such resource" mostly means the hub is out of reach.
            Some(domain) => Error::Nats(format!(
                "the lattice store in JetStream domain `{domain}` is unreachable (is the hub reachable from this NATS server?): {e}"
            )),
            None => e,
        })
    }

    async fn all<T: serde::de::DeserializeOwned>(
        store: &kv::Store,
        what: &str,
    ) -> Result<Vec<(String, T)>> {
        let keys: Vec<String> = match store.keys().await {
            Ok(keys) => keys.try_collect().await.map_err(Error::nats)?,
            Err(e) => return Err(Error::nats(e)),
        };
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            if let Some(value) = store.get(&key).await.map_err(Error::nats)? {
                match decode(what, &key, &value) {
                    Ok(v) => out.push((key, v)),
                    Err(err) => tracing::warn!(%err, "skipping unreadable entry"),
                }
            }
        }
        Ok(out)
    }

    /// Every link, now.
    pub async fn links(&self) -> Result<Vec<Link>> {
        Ok(Self::all::<Link>(&self.links, "link")
            .await?
            .into_iter()
            .map(|(_, l)| l)
            .collect())
    }

    pub async fn link(&self, key: &LinkKey) -> Result<Option<Link>> {
        let k = key.storage_key();
        match self.links.get(&k).await.map_err(Error::nats)? {
            Some(v) => Ok(Some(decode("link", &k, &v)?)),
            None => Ok(None),
        }
    }

    /// Stores a link; an existing link with the same identity is replaced in one write, so
    /// retargeting never leaves a moment without a target.
    pub async fn put_link(&self, link: &Link) -> Result<()> {
        link.validate()?;
        let value = serde_json::to_vec(link).map_err(|e| Error::malformed("link", e))?;
        self.links
            .put(link.key().storage_key(), value.into())
            .await
            .map_err(Error::nats)?;
        Ok(())
    }

    /// Deletes a link; false when there was none.
    pub async fn delete_link(&self, key: &LinkKey) -> Result<bool> {
        if self.link(key).await?.is_none() {
            return Ok(false);
        }
        self.links
            .delete(key.storage_key())
            .await
            .map_err(Error::nats)?;
        Ok(true)
    }

    pub async fn configs(&self) -> Result<BTreeMap<String, Config>> {
        Ok(Self::all::<Config>(&self.configs, "config")
            .await?
            .into_iter()
            .collect())
    }

    pub async fn config(&self, name: &str) -> Result<Option<Config>> {
        validate_config_name(name)?;
        match self.configs.get(name).await.map_err(Error::nats)? {
            Some(v) => Ok(Some(decode("config", name, &v)?)),
            None => Ok(None),
        }
    }

    pub async fn put_config(&self, name: &str, config: &Config) -> Result<()> {
        validate_config_name(name)?;
        let value = serde_json::to_vec(config).map_err(|e| Error::malformed("config", e))?;
        self.configs
            .put(name, value.into())
            .await
            .map_err(Error::nats)?;
        Ok(())
    }

    pub async fn delete_config(&self, name: &str) -> Result<bool> {
        if self.config(name).await?.is_none() {
            return Ok(false);
        }
        self.configs.delete(name).await.map_err(Error::nats)?;
        Ok(true)
    }

    /// Every link change from now on (not the current links: read those with
    /// [`Self::links`] after starting the watch). The stream ends at the first error, which
    /// for a follower means: read a fresh snapshot.
    pub async fn watch_links(&self) -> Result<BoxStream<'static, LinkChange>> {
        let watch = self.links.watch(">").await.map_err(Error::nats)?;
        Ok(until_error(watch)
            .filter_map(|entry| async move {
                match entry.operation {
                    kv::Operation::Put => match decode::<Link>("link", &entry.key, &entry.value) {
                        Ok(link) => Some(Change::Put(link)),
                        Err(err) => {
                            tracing::warn!(%err, "ignoring an unreadable link");
                            None
                        }
                    },
                    kv::Operation::Delete | kv::Operation::Purge => {
                        LinkKey::from_storage_key(&entry.key).map(Change::Deleted)
                    }
                }
            })
            .boxed())
    }

    /// Every config change from now on (see [`Self::watch_links`]).
    pub async fn watch_configs(&self) -> Result<BoxStream<'static, ConfigChange>> {
        let watch = self.configs.watch(">").await.map_err(Error::nats)?;
        Ok(until_error(watch)
            .filter_map(|entry| async move {
                match entry.operation {
                    kv::Operation::Put => {
                        match decode::<Config>("config", &entry.key, &entry.value) {
                            Ok(c) => Some(Change::Put((entry.key, c))),
                            Err(err) => {
                                tracing::warn!(%err, "ignoring an unreadable config");
                                None
                            }
                        }
                    }
                    kv::Operation::Delete | kv::Operation::Purge => {
                        Some(Change::Deleted(entry.key))
                    }
                }
            })
            .boxed())
    }

    /// Whether the buckets are beyond a cut: their hub's JetStream domain does not answer.
    pub async fn partitioned(&self) -> bool {
        partition::cut_off(&self.nats, self.hub_probe.as_deref()).await
    }

    /// The links, to [`follow`].
    pub fn links_followed(&self) -> LinksFollowed {
        LinksFollowed(self.clone())
    }

    /// The named configs, to [`follow`].
    pub fn configs_followed(&self) -> ConfigsFollowed {
        ConfigsFollowed(self.clone())
    }

    /// Links and named configs together, to [`follow`].
    pub fn state_followed(&self) -> StateFollowed {
        StateFollowed(self.clone())
    }
}

/// A KV watch as a stream that ends at its first error (a gap the follower closes with a
/// fresh snapshot).
fn until_error(watch: kv::Watch) -> impl futures::Stream<Item = kv::Entry> + Send + 'static {
    watch.scan((), |_, entry| {
        futures::future::ready(match entry {
            Ok(entry) => Some(entry),
            Err(err) => {
                tracing::debug!(%err, "key-value watch failed");
                None
            }
        })
    })
}

/// The lattice's links, as a [`Followed`] source.
pub struct LinksFollowed(LatticeStore);

impl Followed for LinksFollowed {
    type Snapshot = Vec<Link>;
    type Change = LinkChange;

    fn snapshot(&self) -> BoxFuture<'_, Result<Vec<Link>>> {
        self.0.links().boxed()
    }

    fn changes(&self) -> BoxFuture<'_, Result<BoxStream<'static, LinkChange>>> {
        self.0.watch_links().boxed()
    }

    fn partitioned(&self) -> BoxFuture<'_, bool> {
        self.0.partitioned().boxed()
    }
}

/// The lattice's named configs, as a [`Followed`] source.
pub struct ConfigsFollowed(LatticeStore);

impl Followed for ConfigsFollowed {
    type Snapshot = Configs;
    type Change = ConfigChange;

    fn snapshot(&self) -> BoxFuture<'_, Result<Configs>> {
        self.0.configs().boxed()
    }

    fn changes(&self) -> BoxFuture<'_, Result<BoxStream<'static, ConfigChange>>> {
        self.0.watch_configs().boxed()
    }

    fn partitioned(&self) -> BoxFuture<'_, bool> {
        self.0.partitioned().boxed()
    }
}

/// Links and named configs together, as one [`Followed`] source.
pub struct StateFollowed(LatticeStore);

impl Followed for StateFollowed {
    type Snapshot = (Vec<Link>, Configs);
    type Change = StateChange;

    fn snapshot(&self) -> BoxFuture<'_, Result<(Vec<Link>, Configs)>> {
        async move { Ok((self.0.links().await?, self.0.configs().await?)) }.boxed()
    }

    fn changes(&self) -> BoxFuture<'_, Result<BoxStream<'static, StateChange>>> {
        async move {
            use futures::future::ready;
            // Either watch ending is a gap in what the follower knows: the merged stream
            // ends with the first of them.
            let end = || futures::stream::once(ready(None));
            let links = self.0.watch_links().await?;
            let configs = self.0.watch_configs().await?;
            let merged = futures::stream::select(
                links.map(|c| Some(StateChange::Link(c))).chain(end()),
                configs.map(|c| Some(StateChange::Config(c))).chain(end()),
            )
            .take_while(|c| ready(c.is_some()))
            .filter_map(ready);
            Ok(merged.boxed())
        }
        .boxed()
    }

    fn partitioned(&self) -> BoxFuture<'_, bool> {
        self.0.partitioned().boxed()
    }
}
