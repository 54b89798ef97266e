//! The links that target this provider, kept current from the lattice's key-value buckets,
//! and the lookup of the link a call follows.

mod secrets;
mod state;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use trellis_lattice::kv::{self, Change, LatticeState, StateChange, Update};
use trellis_lattice::link::{Config, LinkKey, DEFAULT_LINK_NAME};
use trellis_lattice::rpc::IncomingCall;
use trellis_lattice::secret::SecretsKey;

pub use state::{merge_configs, LinkEvent, LinkInfo, LinkState};

use crate::error::Result;

/// How long a link that stopped targeting this provider still serves calls that hosts sent
/// before they saw the change (as long as a host's call timeout).
pub const RETARGET_GRACE: Duration = Duration::from_secs(10);

/// Why a call cannot be matched to a link.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error(
        "the call does not name the component that makes it (no `trellis-source` header); \
         provider `{provider}` serves linked components only"
    )]
    NoSource { provider: String },
    #[error(
        "no link named `{name}` from `{source_id}` to `{provider}` for {package}{}",
        match elsewhere {
            Some(t) => format!(" (that link targets `{t}`)"),
            None => format!(
                " (put one with `trellis link put {source_id} {provider} {package} --interface ...`)"
            ),
        }
    )]
    NotLinked {
        provider: String,
        source_id: String,
        package: String,
        name: String,
        /// Where the link points instead, if it exists.
        elsewhere: Option<String>,
    },
    #[error(
        "link `{name}` from `{source_id}` to `{provider}` for {package} names target config {} \
         that does not exist (create it with `trellis config put NAME key=value...`)",
        missing.iter().map(|m| format!("`{m}`")).collect::<Vec<_>>().join(", ")
    )]
    MissingConfig {
        provider: String,
        source_id: String,
        package: String,
        name: String,
        missing: Vec<String>,
    },
    #[error(
        "link `{name}` from `{source_id}` to `{provider}` for {package}: {}",
        reasons.join("; ")
    )]
    Secret {
        provider: String,
        source_id: String,
        package: String,
        name: String,
        /// Each names the config and key, never the value.
        reasons: Vec<String>,
    },
    #[error("cannot read link `{name}` of `{source_id}` from the lattice store: {reason}")]
    Store {
        source_id: String,
        name: String,
        reason: String,
    },
}

/// The links targeting one provider, with their merged target config; shared and cheap to
/// clone.
#[derive(Clone)]
pub struct Links {
    inner: Arc<Inner>,
}

struct Inner {
    store: LatticeState,
    provider_id: String,
    state: RwLock<LinkState>,
    events: mpsc::UnboundedSender<LinkEvent>,
}

impl Links {
    /// Loads the links and configs in `store` (or, while it is unreachable, its host's saved
    /// copy), then follows their changes until `shutdown`. The receiver yields what the
    /// provider should hear: first every current link, then each change.
    pub async fn start(
        store: LatticeState,
        provider_id: &str,
        own_config_names: Vec<String>,
        secrets: Option<Arc<SecretsKey>>,
        shutdown: CancellationToken,
    ) -> Result<(Self, mpsc::UnboundedReceiver<LinkEvent>)> {
        Self::start_with_grace(
            store,
            provider_id,
            own_config_names,
            secrets,
            RETARGET_GRACE,
            shutdown,
        )
        .await
    }

    pub async fn start_with_grace(
        store: LatticeState,
        provider_id: &str,
        own_config_names: Vec<String>,
        secrets: Option<Arc<SecretsKey>>,
        grace: Duration,
        shutdown: CancellationToken,
    ) -> Result<(Self, mpsc::UnboundedReceiver<LinkEvent>)> {
        let (tx, rx) = mpsc::unbounded_channel();
        let links = Self {
            inner: Arc::new(Inner {
                store,
                provider_id: provider_id.to_string(),
                state: RwLock::new(
                    LinkState::new(provider_id, own_config_names, grace).with_secrets(secrets),
                ),
                events: tx,
            }),
        };
        // The links are there before the provider serves; the follower then keeps them current
        // (its first snapshot finds nothing new).
        links.resync().await?;
        let missing = links.read(LinkState::missing_own_config);
        if !missing.is_empty() {
            tracing::warn!(
                provider_id,
                ?missing,
                "the provider's own config names configs that do not exist (yet)"
            );
        }
        let follower = links.clone();
        tokio::spawn(kv::follow(
            links.inner.store.followed(),
            shutdown,
            move |update| follower.apply(update),
        ));
        Ok((links, rx))
    }

    fn read<T>(&self, f: impl FnOnce(&LinkState) -> T) -> T {
        match self.inner.state.read() {
            Ok(s) => f(&s),
            Err(poisoned) => f(&poisoned.into_inner()),
        }
    }

    fn update(&self, f: impl FnOnce(&mut LinkState) -> Vec<LinkEvent>) {
        let events = match self.inner.state.write() {
            Ok(mut s) => f(&mut s),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        };
        for event in events {
            log_event(&self.inner.provider_id, &event);
            let _ = self.inner.events.send(event);
        }
    }

    pub fn provider_id(&self) -> &str {
        &self.inner.provider_id
    }

    /// The lattice's links and config as this provider reads them (for providers that keep
    /// views of their own, such as routes or subscriptions).
    pub fn lattice_state(&self) -> &LatticeState {
        &self.inner.store
    }

    /// Every link that targets the provider now.
    pub fn all(&self) -> Vec<LinkInfo> {
        let mut all: Vec<_> = self.read(|s| s.links().cloned().collect());
        all.sort_by_key(LinkInfo::key);
        all
    }

    /// The link with this identity, if it targets the provider (now, or until
    /// [`RETARGET_GRACE`] after it stopped).
    pub fn get(&self, key: &LinkKey) -> Option<LinkInfo> {
        self.read(|s| s.lookup(key, Instant::now()).cloned())
    }

    /// The provider's own config: its config names merged in order.
    pub fn provider_config(&self) -> Config {
        self.read(|s| s.own_config().clone())
    }

    /// The link an incoming call follows: the one from the calling component (`trellis-source`)
    /// for `wit_namespace:wit_package` with the call's link name (`trellis-link`, default
    /// `default`), with its target config. A link this provider has not heard of yet (a host
    /// may see a new link before the provider does) is read from the store.
    pub async fn for_call(
        &self,
        call: &IncomingCall,
        wit_namespace: &str,
        wit_package: &str,
    ) -> Result<LinkInfo, LinkError> {
        let provider = self.provider_id();
        let Some(source_id) = call.source.as_deref().filter(|s| !s.is_empty()) else {
            return Err(LinkError::NoSource {
                provider: provider.to_string(),
            });
        };
        let key = LinkKey {
            source_id: source_id.to_string(),
            wit_namespace: wit_namespace.to_string(),
            wit_package: wit_package.to_string(),
            name: call
                .link
                .as_deref()
                .filter(|n| !n.is_empty())
                .unwrap_or(DEFAULT_LINK_NAME)
                .to_string(),
        };
        if let Some(info) = self.get(&key) {
            if info.missing_config.is_empty() && info.unopened.is_empty() {
                return Ok(info);
            }
        }
        self.fetch(&key).await
    }

    /// Reads one link and its configs straight from the store.
    async fn fetch(&self, key: &LinkKey) -> Result<LinkInfo, LinkError> {
        let provider = self.provider_id().to_string();
        let package = format!("{}:{}", key.wit_namespace, key.wit_package);
        let store_err = |e: trellis_lattice::Error| LinkError::Store {
            source_id: key.source_id.clone(),
            name: key.name.clone(),
            reason: e.to_string(),
        };
        let link = self.inner.store.link(key).await.map_err(store_err)?;
        let link = match link {
            Some(link) if link.target_id == provider => link,
            other => {
                return Err(LinkError::NotLinked {
                    provider,
                    source_id: key.source_id.clone(),
                    package,
                    name: key.name.clone(),
                    elsewhere: other.map(|l| l.target_id),
                })
            }
        };
        let mut configs = std::collections::BTreeMap::new();
        for name in &link.target_config {
            if let Some(c) = self.inner.store.config(name).await.map_err(store_err)? {
                configs.insert(name.clone(), c);
            }
        }
        let info = self.read(|s| state::resolve(&link, &configs, s.secrets()));
        if !info.unopened.is_empty() {
            return Err(LinkError::Secret {
                provider,
                source_id: key.source_id.clone(),
                package,
                name: key.name.clone(),
                reasons: info.unopened,
            });
        }
        if !info.missing_config.is_empty() {
            return Err(LinkError::MissingConfig {
                provider,
                source_id: key.source_id.clone(),
                package,
                name: key.name.clone(),
                missing: info.missing_config,
            });
        }
        Ok(info)
    }

    /// Replaces the state with what the store holds now.
    async fn resync(&self) -> Result<()> {
        let (links, configs) = self.inner.store.snapshot().await?;
        self.update(|s| s.replace_all(links, configs, Instant::now()));
        Ok(())
    }

    /// Applies what the follower saw.
    fn apply(&self, update: Update<(Vec<trellis_lattice::link::Link>, kv::Configs), StateChange>) {
        let now = Instant::now();
        match update {
            Update::Snapshot((links, configs)) => {
                self.update(|s| s.replace_all(links, configs, now))
            }
            Update::Change(StateChange::Link(Change::Put(link))) => {
                self.update(|s| s.put_link(link, now))
            }
            Update::Change(StateChange::Link(Change::Deleted(key))) => {
                self.update(|s| s.delete_link(&key, now))
            }
            Update::Change(StateChange::Config(Change::Put((name, config)))) => {
                self.update(|s| s.put_config(name, config))
            }
            Update::Change(StateChange::Config(Change::Deleted(name))) => {
                self.update(|s| s.delete_config(&name))
            }
        }
    }
}

fn log_event(provider_id: &str, event: &LinkEvent) {
    match event {
        LinkEvent::Put(info) => tracing::info!(
            provider_id,
            source_id = info.link.source_id,
            link_name = info.link.name,
            package = info.link.package(),
            missing_config = ?info.missing_config,
            "link put"
        ),
        LinkEvent::Deleted(info) => tracing::info!(
            provider_id,
            source_id = info.link.source_id,
            link_name = info.link.name,
            package = info.link.package(),
            "link deleted"
        ),
        LinkEvent::ConfigChanged(_) => tracing::info!(provider_id, "provider config changed"),
    }
}
