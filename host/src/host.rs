//! A running host: its shared state, start-up, and orderly shutdown.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use trellis_lattice::event::{Event, HostStarted, HostStopped};
use trellis_lattice::inventory::{ComponentLimits, HostInventory, HostResources};
use trellis_lattice::labels::Labels;
use trellis_lattice::rpc::{Invoker, InvokerConfig};
use trellis_lattice::Subjects;

use crate::components::Components;
use crate::config::HostConfig;
use crate::identity::Identity;
use crate::lattice::events::Events;
use crate::lattice::session::{self, SessionEvent};
use crate::lattice::{control, heartbeat};
use crate::links::LinkTable;
use crate::runtime::{ImportResolver, Runtime, RuntimeConfig};
use trellis_lattice::store::LatticeStore;

/// Everything the parts of a host share.
pub struct HostState {
    pub id: String,
    pub friendly_name: String,
    pub subjects: Subjects,
    pub nats: async_nats::Client,
    /// The same connection, shared the way wRPC clients want it.
    pub nats_shared: Arc<async_nats::Client>,
    pub runtime: Arc<Runtime>,
    pub invoker: Arc<Invoker>,
    pub resolver: Arc<dyn ImportResolver>,
    /// Links by source, for routing imports.
    pub links: Arc<LinkTable>,
    store: tokio::sync::OnceCell<LatticeStore>,
    pub labels: RwLock<Labels>,
    pub defaults: ComponentLimits,
    pub config: HostConfig,
    pub started_at: DateTime<Utc>,
    started: Instant,
    pub components: Components,
    pub providers: crate::providers::Providers,
    pub events: Events,
    /// Fires when the host begins shutting down.
    pub shutdown: CancellationToken,
    stop_timeout: std::sync::Mutex<Option<Duration>>,
}

impl HostState {
    /// The lattice's link and config buckets (opened on first use).
    pub async fn store(&self) -> Result<LatticeStore, String> {
        self.store
            .get_or_try_init(|| LatticeStore::open(&self.nats, self.subjects.lattice()))
            .await
            .cloned()
            .map_err(|e| format!("lattice store unavailable: {e}"))
    }

    pub fn labels(&self) -> Labels {
        self.labels.read().map(|l| l.clone()).unwrap_or_default()
    }

    pub fn inventory(&self) -> HostInventory {
        HostInventory {
            host_id: self.id.clone(),
            friendly_name: self.friendly_name.clone(),
            lattice: self.subjects.lattice().to_string(),
            labels: self.labels(),
            version: trellis_lattice::VERSION.to_string(),
            uptime_seconds: self.started.elapsed().as_secs(),
            started_at: self.started_at,
            components: self.components.all().iter().map(|c| c.info()).collect(),
            providers: self.providers.all().iter().map(|p| p.info()).collect(),
            resources: HostResources {
                rss_bytes: crate::labels::rss_bytes(),
                active_invocations: self.runtime.ticker().active() as u64,
            },
            heartbeat_interval_ms: self.config.heartbeat_interval.as_millis() as u64,
        }
    }

    /// Begins an orderly stop (control request or signal).
    pub fn request_stop(&self, timeout_ms: Option<u64>) {
        if let Ok(mut t) = self.stop_timeout.lock() {
            *t = timeout_ms.map(Duration::from_millis);
        }
        self.shutdown.cancel();
    }
}

/// A started host.
pub struct Host {
    state: Arc<HostState>,
}

impl Host {
    /// Starts a host: connects, announces itself, and serves until stopped.
    pub async fn start(config: HostConfig) -> anyhow::Result<Self> {
        trellis_lattice::id::validate_lattice(&config.lattice)?;
        let identity = Identity::new(config.seed.as_deref(), config.friendly_name.clone())?;
        let labels = crate::labels::merge(&config.labels)?;
        let runtime = Arc::new(Runtime::new(&RuntimeConfig {
            pool_instances: config.pool_instances,
            memory_ceiling: config.memory_ceiling,
            cache_dir: config.cache_dir.clone(),
            keep_resident: config.pool_keep_resident,
            memory_cow: config.memory_cow,
            fast_compile: config.fast_compile,
        })?);
        let id = identity.host_id();
        let name = format!("trellis-host {} {}", identity.friendly_name, id);
        let (nats, mut session_events) =
            session::connect(&config.nats_url, &config.nats_auth, &name).await?;
        let subjects = Subjects::new(config.lattice.clone());
        let invoker = Invoker::new(
            nats.clone(),
            subjects.clone(),
            InvokerConfig {
                timeout: config.rpc_timeout,
                ..InvokerConfig::default()
            },
        )
        .await?;
        let links = Arc::new(LinkTable::default());
        let state = Arc::new(HostState {
            id: id.clone(),
            friendly_name: identity.friendly_name.clone(),
            events: Events::new(nats.clone(), subjects.clone(), id.clone()),
            subjects,
            nats_shared: Arc::new(nats.clone()),
            nats,
            runtime,
            invoker: Arc::new(invoker),
            resolver: Arc::clone(&links) as Arc<dyn ImportResolver>,
            links,
            store: tokio::sync::OnceCell::new(),
            labels: RwLock::new(labels),
            defaults: ComponentLimits {
                max_memory_bytes: config.max_memory,
                timeout_ms: config.max_execution_time.as_millis() as u64,
            },
            config,
            started_at: Utc::now(),
            started: Instant::now(),
            components: Components::default(),
            providers: Default::default(),
            shutdown: CancellationToken::new(),
            stop_timeout: std::sync::Mutex::new(None),
        });

        // Links are loaded before the host takes requests, so a component started right away
        // finds its links; after that a watch keeps them current (opening the store when
        // NATS or JetStream become available, if they are not yet).
        match tokio::time::timeout(Duration::from_secs(5), state.store()).await {
            Ok(Ok(store)) => match store.links().await {
                Ok(all) => state.links.replace_all(all),
                Err(err) => tracing::warn!(%err, "cannot load links yet"),
            },
            Ok(Err(err)) => tracing::warn!(%err, "links unavailable until the lattice store opens"),
            Err(_) => {
                tracing::warn!("the lattice store did not open within 5s; links follow later")
            }
        }
        let follower = Arc::clone(&state);
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(200);
            loop {
                match follower.store().await {
                    Ok(store) => {
                        let links = Arc::clone(&follower.links);
                        tokio::join!(
                            links.follow(store.clone(), follower.shutdown.clone()),
                            crate::components::config::follow(Arc::clone(&follower), store),
                        );
                        return;
                    }
                    Err(err) => tracing::debug!(%err, "lattice store not ready"),
                }
                tokio::select! {
                    _ = follower.shutdown.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        });
        control::start(&state).await?;
        let beat_now = Arc::new(Notify::new());
        tokio::spawn(heartbeat::run(Arc::clone(&state), Arc::clone(&beat_now)));
        announce(&state, false).await;
        beat_now.notify_one();

        // After a reconnect the lattice may have forgotten us (a restarted NATS, a manager
        // that reaped the host): announce again and send the inventory at once.
        let s = Arc::clone(&state);
        tokio::spawn(async move {
            let mut was_disconnected = false;
            loop {
                tokio::select! {
                    _ = s.shutdown.cancelled() => return,
                    ev = session_events.recv() => match ev {
                        Some(SessionEvent::Disconnected) => {
                            tracing::warn!("disconnected from NATS; reconnecting");
                            was_disconnected = true;
                        }
                        Some(SessionEvent::Connected) if was_disconnected => {
                            tracing::info!("reconnected to NATS");
                            was_disconnected = false;
                            announce(&s, true).await;
                            beat_now.notify_one();
                        }
                        Some(SessionEvent::Connected) => {}
                        None => return,
                    },
                }
            }
        });
        tracing::info!(
            host_id = %state.id,
            friendly_name = %state.friendly_name,
            lattice = %state.subjects.lattice(),
            allocator = %state.runtime.allocator(),
            "host started"
        );
        Ok(Self { state })
    }

    pub fn id(&self) -> &str {
        &self.state.id
    }

    pub fn state(&self) -> &Arc<HostState> {
        &self.state
    }

    /// Resolves when a stop was requested (over the control interface or by [`Self::stop`]).
    pub async fn stopped(&self) {
        self.state.shutdown.cancelled().await
    }

    /// Stops taking work, lets in-flight invocations finish (bounded), says goodbye.
    pub async fn stop(self, reason: &str) {
        let state = self.state;
        state.shutdown.cancel();
        let timeout = state
            .stop_timeout
            .lock()
            .ok()
            .and_then(|t| *t)
            .unwrap_or(state.config.shutdown_timeout);
        state.components.stop_all(timeout).await;
        state.providers.stop_all(timeout).await;
        state
            .events
            .publish(
                Event::HostStopped(HostStopped {
                    host_id: state.id.clone(),
                    reason: reason.to_string(),
                }),
                None,
            )
            .await;
        // Without a connection there is nobody to tell; do not wait for one.
        match tokio::time::timeout(Duration::from_secs(2), state.nats.flush()).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::warn!(%err, "could not flush NATS before exiting"),
            Err(_) => tracing::warn!("NATS unreachable; exiting without saying goodbye"),
        }
        tracing::info!(host_id = %state.id, reason, "host stopped");
    }
}

async fn announce(state: &HostState, reconnected: bool) {
    state
        .events
        .publish(
            Event::HostStarted(HostStarted {
                host_id: state.id.clone(),
                friendly_name: state.friendly_name.clone(),
                labels: state.labels(),
                version: trellis_lattice::VERSION.to_string(),
                reconnected,
            }),
            None,
        )
        .await;
}
