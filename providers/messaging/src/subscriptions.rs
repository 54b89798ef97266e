//! Subscriptions come from links: a link from the provider to a component for
//! `trellis:messaging` `incoming-handler` subscribes that component to the topics of the
//! link's source config. Followed from the lattice's link and config store; a link put,
//! changed or deleted starts, restarts or stops its subscription.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use trellis_lattice::kv::{self, Mirror};
use trellis_lattice::link::{Config, Link, LinkKey};
use trellis_lattice::rpc::{Invoker, InvokerConfig};
use trellis_provider::links::merge_configs;
use trellis_provider::{Caller, ProviderContext};

use crate::config;
use crate::deliver::{Counters, Sink, Target};
use crate::transport::{Subscribe, Transport};

/// Whether `link` subscribes a component to messages from `provider_id`.
pub fn is_subscription(link: &Link, provider_id: &str) -> bool {
    link.source_id == provider_id
        && link.wit_namespace == "trellis"
        && link.wit_package == "messaging"
        && link.interfaces.iter().any(|i| i == "incoming-handler")
}

/// The filters a subscription config names (none when it is unusable).
fn topics_of(config: &Config) -> Vec<String> {
    config::Delivery::from_config(config)
        .map(|d| d.topics)
        .unwrap_or_default()
}

/// What a subscription link asks for; a change of any of it restarts the subscription.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Wanted {
    target: String,
    config: Config,
}

struct Running {
    wanted: Wanted,
    stop: CancellationToken,
    unsubscribe: CancellationToken,
    counters: Option<Arc<Counters>>,
}

/// The subscriptions of one provider, and what became of their messages.
#[derive(Clone, Default)]
pub struct Subscriptions {
    running: Arc<Mutex<BTreeMap<LinkKey, Running>>>,
}

impl Subscriptions {
    /// `(links subscribed, delivered, failed, dropped)` over every link.
    pub fn totals(&self) -> (usize, u64, u64, u64) {
        let Ok(running) = self.running.lock() else {
            return (0, 0, 0, 0);
        };
        running.values().filter_map(|r| r.counters.as_ref()).fold(
            (0, 0, 0, 0),
            |(n, d, f, x), c| {
                let (cd, cf, cx) = c.snapshot();
                (n + 1, d + cd, f + cf, x + cx)
            },
        )
    }

    /// Follows the store until `stop`, keeping one subscription per link.
    pub async fn follow<T: Transport>(
        ctx: &ProviderContext,
        transport: Arc<T>,
        stop: CancellationToken,
    ) -> anyhow::Result<Self> {
        let store = ctx.lattice_state().clone();
        let mirror = store.mirror().await?;
        let invoker = Arc::new(
            Invoker::new(
                ctx.nats().clone(),
                ctx.subjects().clone(),
                InvokerConfig::default(),
            )
            .await?,
        );
        // For the instances next to the provider: when there are none, say so at once.
        let impatient = Arc::new(
            Invoker::new(
                ctx.nats().clone(),
                ctx.subjects().clone(),
                InvokerConfig {
                    no_responders_patience: std::time::Duration::ZERO,
                    ..InvokerConfig::default()
                },
            )
            .await?,
        );
        let (tx, mut rx) = watch::channel(mirror.clone());
        let mut followed = mirror;
        tokio::spawn(kv::follow(store.followed(), stop.clone(), move |update| {
            followed.apply(update);
            tx.send_replace(followed.clone());
        }));
        let subs = Self::default();
        let reconciler = Reconciler {
            subs: subs.clone(),
            transport,
            invoker,
            impatient,
            host_id: ctx.host_id().to_string(),
            provider_id: ctx.provider_id().into(),
        };
        let first = rx.borrow_and_update().clone();
        reconciler.reconcile(&first).await;
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    changed = rx.changed() => if changed.is_err() { break },
                }
                let mirror = rx.borrow_and_update().clone();
                reconciler.reconcile(&mirror).await;
            }
            reconciler.stop_all();
        });
        Ok(subs)
    }
}

struct Reconciler<T> {
    subs: Subscriptions,
    transport: Arc<T>,
    invoker: Arc<Invoker>,
    impatient: Arc<Invoker>,
    host_id: String,
    provider_id: Arc<str>,
}

impl<T: Transport> Reconciler<T> {
    fn wanted(&self, mirror: &Mirror) -> BTreeMap<LinkKey, Wanted> {
        let mut wanted = BTreeMap::new();
        for (key, link) in &mirror.links {
            if !is_subscription(link, &self.provider_id) {
                continue;
            }
            let (config, missing) = merge_configs(&link.source_config, &mirror.configs);
            if !missing.is_empty() {
                tracing::warn!(
                    source_id = link.source_id,
                    target_id = link.target_id,
                    link_name = link.name,
                    missing = missing.join(","),
                    "subscription waits for its named config"
                );
                continue;
            }
            wanted.insert(
                key.clone(),
                Wanted {
                    target: link.target_id.clone(),
                    config,
                },
            );
        }
        wanted
    }

    async fn reconcile(&self, mirror: &Mirror) {
        let wanted = self.wanted(mirror);
        let mut to_start = Vec::new();
        // Filters of subscriptions that change, which their next one must drop.
        let mut previous: BTreeMap<LinkKey, Vec<String>> = BTreeMap::new();
        if let Ok(mut running) = self.subs.running.lock() {
            running.retain(|key, r| {
                let next = wanted.get(key);
                let keep = next == Some(&r.wanted);
                if !keep {
                    match next {
                        Some(_) => {
                            previous.insert(key.clone(), topics_of(&r.wanted.config));
                        }
                        None => r.unsubscribe.cancel(),
                    }
                    r.stop.cancel();
                }
                keep
            });
            for (key, w) in &wanted {
                if !running.contains_key(key) {
                    to_start.push((key.clone(), w.clone()));
                }
            }
        }
        for (key, wanted) in to_start {
            let stop = CancellationToken::new();
            let unsubscribe = CancellationToken::new();
            let now = topics_of(&wanted.config);
            let forget = previous
                .remove(&key)
                .unwrap_or_default()
                .into_iter()
                .filter(|t| !now.contains(t))
                .collect();
            let counters = self
                .start(&key, &wanted, stop.clone(), unsubscribe.clone(), forget)
                .await;
            if let Ok(mut running) = self.subs.running.lock() {
                running.insert(
                    key,
                    Running {
                        wanted,
                        stop,
                        unsubscribe,
                        counters,
                    },
                );
            }
        }
    }

    /// Starts one subscription; `None` when its config cannot be used (logged, and left
    /// alone until the link or its config changes).
    async fn start(
        &self,
        key: &LinkKey,
        wanted: &Wanted,
        stop: CancellationToken,
        unsubscribe: CancellationToken,
        forget: Vec<String>,
    ) -> Option<Arc<Counters>> {
        let name = format!("{}/{}", key.source_id, key.name);
        let refused = |err: config::ConfigError| {
            tracing::warn!(subscription = %name, target_id = wanted.target, %err, "subscription refused");
            None
        };
        let delivery = match config::Delivery::from_config(&wanted.config) {
            Ok(d) => d,
            Err(err) => return refused(err),
        };
        let target = Target {
            caller: Caller::new(self.invoker.clone(), &wanted.target)
                .preferring_host(self.impatient.clone(), &self.host_id),
            provider_id: self.provider_id.clone(),
            link_name: key.name.as_str().into(),
            system: T::SYSTEM,
        };
        let sink = Sink::start(target, &delivery, stop.clone());
        let counters = sink.counters().clone();
        let sub = Subscribe {
            name: name.clone(),
            group: format!("trellis.{}.{}", self.provider_id, key.name),

            config: wanted.config.clone(),
            topics: delivery.topics.clone(),
            sink,
            stop: stop.clone(),
            unsubscribe,
            forget,
        };
        match self.transport.subscribe(sub).await {
            Ok(()) => {
                tracing::info!(subscription = %name, target_id = wanted.target, topics = delivery.topics.join(","), "subscribed");
                Some(counters)
            }
            Err(err) => {
                stop.cancel();
                refused(err)
            }
        }
    }

    fn stop_all(&self) {
        if let Ok(mut running) = self.subs.running.lock() {
            for r in running.values() {
                r.stop.cancel();
            }
            running.clear();
        }
    }
}
