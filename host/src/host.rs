//! A running host: its parts wired together, start-up, and orderly shutdown. Each part gets
//! only what it needs; this file is the one place that knows them all.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;
use trellis_lattice::event::{Event, HostStarted, HostStopped};
use trellis_lattice::inventory::ComponentLimits;
use trellis_lattice::rpc::{Invoker, InvokerConfig};
use trellis_lattice::server::{EventPublisher, EventSink};
use trellis_lattice::Subjects;

use crate::components::{Components, ComponentsContext};
use crate::config::HostConfig;
use crate::control::parts::{ComponentControl, HostControl, ProviderControl};
use crate::control::state::StateHandlers;
use crate::control::{LatticeImports, Router};
use crate::identity::Identity;
use crate::ingress::HostDispatch;
use crate::inventory::HostInfo;
use crate::labels::HostLabels;
use crate::lattice_kv::{LatticeKv, StateStore};
use crate::links::LinkTable;
use crate::providers::{Providers, ProvidersContext};
use crate::runtime::{HostLimits, ImportResolver, Linking, Runtime};

use crate::session::{self, SessionEvent};
use crate::state_dir::{RememberedComponents, RememberedProviders, SavedWorkload, StateDir};
use trellis_lattice::kv::{LatticeState, StateCopy};

/// A started host.
pub struct Host {
    info: Arc<HostInfo>,
    events: EventPublisher,
    nats: async_nats::Client,
    presence: crate::presence::Presence,
    shutdown_timeout: Duration,
    // Locked for as long as the host runs.
    _state_dir: Option<StateDir>,
}

impl Host {
    /// Starts a host: connects, announces itself, and serves until stopped.
    pub async fn start(config: HostConfig) -> anyhow::Result<Self> {
        trellis_lattice::id::validate_lattice(&config.lattice)?;
        let identity = Identity::new(config.seed.as_deref(), config.friendly_name.clone())?;
        let state_dir = config
            .state_dir
            .as_deref()
            .map(StateDir::open)
            .transpose()?;
        let labels = Arc::new(HostLabels::new(crate::labels::merge(&config.labels)?));
        let secrets = crate::secrets::HostSecrets::load(config.secrets_key.as_deref())?;
        let runtime = Arc::new(Runtime::new(&config.runtime_config())?);
        let id = identity.host_id();
        let name = format!("trellis-host {} {}", identity.friendly_name, id);
        let (nats, session_events) =
            session::connect(&config.nats_url, &config.nats_options(), &name).await?;
        let subjects =
            Subjects::new(config.lattice.clone()).with_js_domain(config.js_domain.clone());
        if config.artifacts.trust.is_on() {
            runtime.share_artifacts(crate::runtime::SharedArtifacts::new(
                &nats,
                &subjects,
                id.clone(),
                config.artifacts.trust.clone(),
            ));
        }
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
        let copy = state_dir.as_ref().map(|d| StateCopy::new(d.copy_path()));
        let kv = Arc::new(LatticeKv::new(LatticeState::new(
            nats.clone(),
            subjects.clone(),
            copy.clone(),
        )));
        let saved = SavedWorkload::load(
            state_dir.as_ref().map(|d| d.workload_path()),
            &config.lattice,
            &id,
        )
        .await;
        let state: Arc<dyn StateStore> = Arc::clone(&kv) as _;
        let events = EventPublisher::new(nats.clone(), subjects.clone(), id.clone());
        let sink: Arc<dyn EventSink> = Arc::new(events.clone());
        let shutdown = CancellationToken::new();
        let chips = trellis_gpio::Chips::new("/dev");
        for (name, lines) in &config.gpio_sim {
            chips
                .add_sim(name, *lines)
                .map_err(|e| anyhow::anyhow!("--gpio-sim {name}={lines}: {e}"))?;
        }
        // The chips found at start are in the labels the host announces itself with.
        let found = Arc::clone(&chips);
        let _ = tokio::task::spawn_blocking(move || found.rescan()).await;
        labels.set_builtin(&crate::labels::gpio_labels(&chips.names().borrow()));
        tokio::spawn(crate::gpio::follow::devices(
            Arc::clone(&chips),
            shutdown.clone(),
        ));
        tokio::spawn(crate::gpio::follow::labels(
            Arc::clone(&chips),
            Arc::clone(&labels),
            Arc::clone(&sink),
            id.clone(),
            shutdown.clone(),
        ));

        let components = Arc::new(Components::new(ComponentsContext {
            host_id: id.clone(),
            runtime: Arc::clone(&runtime),
            linking: Linking {
                invoker: Arc::new(invoker),
                resolver: Arc::clone(&links) as Arc<dyn ImportResolver>,
            },
            nats: nats.clone(),
            nats_shared: Arc::new(nats.clone()),
            subjects: subjects.clone(),
            state: Arc::clone(&state),
            limits: HostLimits {
                defaults: ComponentLimits {
                    max_memory_bytes: config.max_memory,
                    timeout_ms: config.max_execution_time.as_millis() as u64,
                },
                memory_ceiling: config.memory_ceiling,
                time_ceiling: config.max_execution_time_ceiling,
                memory_budget: config.memory_budget,
            },
            shutdown_timeout: config.shutdown_timeout,
            chips: Arc::clone(&chips),
            secrets: secrets.clone(),
            grants: config.grants.clone(),
            issuers: config.issuers.clone(),
        }));
        let providers = Arc::new(Providers::new(ProvidersContext {
            host_id: id.clone(),
            nats: nats.clone(),
            subjects: subjects.clone(),
            nats_url: config.nats_url.clone(),
            nats_auth: config.nats_auth.clone(),
            nats_tls: config.nats_tls.clone(),
            exec: config.provider_exec.clone(),
            issuers: config.issuers.clone(),
            secrets: secrets.clone(),
            cache_dir: config.cache_dir.clone(),
            fetch_timeout: config.fetch_timeout,
            health_interval: config.provider_health_interval,
            shutdown_timeout: config.shutdown_timeout,
            state: Arc::clone(&state),
            state_copy: copy.as_ref().map(|c| c.path().to_path_buf()),
            events: Arc::clone(&sink),
            local_http: Some(Arc::new(HostDispatch::new(&components))),
        }));
        let provider_control: Arc<dyn ProviderControl> = Arc::new(RememberedProviders {
            inner: Arc::clone(&providers) as Arc<dyn ProviderControl>,
            saved: Arc::clone(&saved),
        });
        register_gauges(&components, &providers);
        let info = Arc::new(HostInfo {
            id: id.clone(),
            friendly_name: identity.friendly_name.clone(),
            lattice: config.lattice.clone(),
            labels: Arc::clone(&labels),
            components: Arc::clone(&components),
            providers: Arc::clone(&providers),
            runtime: Arc::clone(&runtime),
            heartbeat_interval: config.heartbeat_interval,
            started_at: Utc::now(),
            started: Instant::now(),
            shutdown: shutdown.clone(),
            stop_timeout: Mutex::new(None),
            nats: nats.clone(),
            events: events.clone(),
        });

        load_links(&kv, &links).await;
        tokio::spawn(follow_state(
            Arc::clone(&kv),
            Arc::clone(&links),
            Arc::clone(&components),
            shutdown.clone(),
        ));

        let component_control: Arc<dyn ComponentControl> = Arc::new(RememberedComponents {
            inner: Arc::clone(&components) as Arc<dyn ComponentControl>,
            saved: Arc::clone(&saved),
        });
        if let Some(copy) = copy {
            tokio::spawn(crate::state_dir::keep_copy(
                kv.state().clone(),
                Arc::clone(&saved),
                copy,
                shutdown.clone(),
            ));
        }
        let router = Arc::new(Router {
            host: Arc::clone(&info) as Arc<dyn HostControl>,
            labels,
            components: Arc::clone(&component_control),
            providers: Arc::clone(&provider_control),
            state: StateHandlers {
                store: state,
                imports: Arc::new(LatticeImports::new(
                    Arc::clone(&component_control),
                    nats.clone(),
                    &config.lattice,
                )?),
                links,
                events: Arc::clone(&sink),
            },
            events: Arc::clone(&sink),
            gpio: Arc::clone(&chips),
        });
        // The last workload comes back before the host says it is here, without waiting for
        // the manager (which may be out of reach): a manager hearing of a host with nothing
        // would place its workload elsewhere too.
        let restored = crate::state_dir::restore(
            &saved,
            component_control.as_ref(),
            provider_control.as_ref(),
        )
        .await;
        if restored > 0 {
            tracing::info!(restored, "restored the saved workload");
        }
        // Counted as live before it answers: a broadcast that counts it waits for its answer.
        let presence = crate::presence::Presence::new(nats.clone(), subjects.clone(), id.clone());
        presence.start(shutdown.clone()).await;
        crate::control::serve(router, &nats, &subjects, &id, shutdown.clone()).await?;

        let beat_now = Arc::new(Notify::new());
        tokio::spawn(crate::heartbeat::run(
            Arc::clone(&info) as Arc<dyn HostControl>,
            Arc::clone(&sink),
            config.heartbeat_interval,
            Arc::clone(&beat_now),
            shutdown.clone(),
        ));
        let host = Self {
            info,
            events,
            nats,
            presence,
            shutdown_timeout: config.shutdown_timeout,
            _state_dir: state_dir,
        };
        host.announce(false).await;
        beat_now.notify_one();
        tokio::spawn(reannounce(host.handle(), session_events, beat_now));
        tracing::info!(
            host_id = %host.info.id,
            friendly_name = %host.info.friendly_name,
            lattice = %host.info.lattice,
            allocator = %runtime.allocator(),
            "host started"
        );
        Ok(host)
    }

    pub fn id(&self) -> &str {
        &self.info.id
    }

    pub fn components(&self) -> &Arc<Components> {
        &self.info.components
    }

    /// Resolves when a stop was requested (over the control interface or by [`Self::stop`]).
    pub async fn stopped(&self) {
        self.info.shutdown.cancelled().await
    }

    /// Stops everything at once, without waiting or saying goodbye (a host dropped abruptly).
    pub fn abort(&self) {
        self.info.shutdown.cancel();
        self.info.components.cancel_all();
        self.info.providers.cancel_all();
    }

    /// Stops taking work, lets in-flight invocations finish (bounded), says goodbye.
    pub async fn stop(self, reason: &str) {
        let info = &self.info;
        info.shutdown.cancel();
        let timeout = info
            .stop_timeout
            .lock()
            .ok()
            .and_then(|t| *t)
            .unwrap_or(self.shutdown_timeout);
        info.components.stop_all(timeout).await;
        info.providers.stop_all(timeout).await;
        if !info.runtime.finish_cache_writes(timeout).await {
            tracing::warn!(
                "compiled components still being written to the cache were left unfinished"
            );
        }
        self.presence.withdraw().await;
        let event = Event::HostStopped(HostStopped {
            host_id: info.id.clone(),
            reason: reason.to_string(),
        });
        self.events.publish(event, None).await;
        // Without a connection there is nobody to tell; do not wait for one.
        match tokio::time::timeout(Duration::from_secs(2), self.nats.flush()).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::warn!(%err, "could not flush NATS before exiting"),
            Err(_) => tracing::warn!("NATS unreachable; exiting without saying goodbye"),
        }
        tracing::info!(host_id = %info.id, reason, "host stopped");
    }

    fn handle(&self) -> Announcer {
        Announcer {
            info: Arc::clone(&self.info),
            events: self.events.clone(),
        }
    }

    async fn announce(&self, reconnected: bool) {
        self.handle().announce(reconnected).await
    }
}

/// What it takes to say "this host is here".
struct Announcer {
    info: Arc<HostInfo>,
    events: EventPublisher,
}

impl Announcer {
    async fn announce(&self, reconnected: bool) {
        let event = Event::HostStarted(HostStarted {
            host_id: self.info.id.clone(),
            friendly_name: self.info.friendly_name.clone(),
            labels: self.info.labels.get(),
            version: trellis_lattice::VERSION.to_string(),
            reconnected,
        });
        self.events.publish(event, None).await;
    }
}

/// Links are loaded before the host takes requests, so a component started right away finds
/// its links; the follower keeps them current after that.
async fn load_links(kv: &LatticeKv, links: &LinkTable) {
    match tokio::time::timeout(Duration::from_secs(5), kv.links()).await {
        Ok(Ok(all)) => links.replace_all(all),
        Ok(Err(err)) => tracing::warn!(%err, "links unavailable until the lattice store opens"),
        Err(_) => tracing::warn!("the lattice store did not open within 5s; links follow later"),
    }
}

/// Keeps the link table and the components' config current, once the store can be opened.
async fn follow_state(
    kv: Arc<LatticeKv>,
    links: Arc<LinkTable>,
    components: Arc<Components>,
    shutdown: CancellationToken,
) {
    let Some(store) = kv.opened(&shutdown).await else {
        return;
    };
    tokio::join!(
        links.follow(store.clone(), shutdown.clone()),
        crate::components::config::follow(components, store, shutdown),
    );
}

/// After a reconnect the lattice may have forgotten the host (a restarted NATS, a manager
/// that reaped it): announce again and send the inventory at once.
async fn reannounce(
    host: Announcer,
    mut session_events: mpsc::UnboundedReceiver<SessionEvent>,
    beat_now: Arc<Notify>,
) {
    let mut was_disconnected = false;
    loop {
        tokio::select! {
            _ = host.info.shutdown.cancelled() => return,
            ev = session_events.recv() => match ev {
                Some(SessionEvent::Disconnected) => {
                    tracing::warn!("disconnected from NATS; reconnecting");
                    was_disconnected = true;
                }
                Some(SessionEvent::Connected) if was_disconnected => {
                    tracing::info!("reconnected to NATS");
                    was_disconnected = false;
                    host.announce(true).await;
                    beat_now.notify_one();
                }
                Some(SessionEvent::Connected) => {}
                None => return,
            },
        }
    }
}

/// The host's observable gauges read the parts they describe while those exist.
fn register_gauges(components: &Arc<Components>, providers: &Arc<Providers>) {
    let components = Arc::downgrade(components);
    let providers = Arc::downgrade(providers);
    crate::observe::register_gauges(
        move || {
            let Some(components) = components.upgrade() else {
                return Vec::new();
            };
            components
                .all()
                .iter()
                .map(|c| crate::observe::InstanceFigures {
                    component_id: c.id.to_string(),
                    app: c.app(),
                    active: c.active_instances(),
                    max: c.replicas(),
                })
                .collect()
        },
        move || {
            let Some(providers) = providers.upgrade() else {
                return Vec::new();
            };
            providers
                .all()
                .iter()
                .map(|p| {
                    (
                        p.id.clone(),
                        p.health().0 == trellis_lattice::inventory::ProviderHealth::Healthy,
                    )
                })
                .collect()
        },
    );
}
