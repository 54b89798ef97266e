//! One component running on this host: its loaded code, limits, replicas (a semaphore of
//! instance slots with a bounded wait queue), config, and how its instances are built.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use trellis_lattice::inventory::{ComponentInfo, ComponentLimits};
use trellis_lattice::link::Config;
use trellis_lattice::manifest::annotations::APP;
use trellis_lattice::rpc::RemoteErrorKind;
use trellis_lattice::trace::TraceContext;

use crate::observe::ComponentMeters;
use crate::runtime::{
    ComponentConfig, Failure, Instance, InstanceSpec, Linking, LoadedComponent, Runtime,
};

/// Invocations that may wait for a free instance before new ones are turned away.
const MAX_QUEUED: usize = 1024;
/// How long interrupted invocations get to unwind.
const INTERRUPT_GRACE: Duration = Duration::from_secs(1);

/// One invocation of a component: its span, the trace context its calls carry, and the
/// attributes of its measurements.
pub struct Invocation {
    pub span: tracing::Span,
    pub trace: TraceContext,
    /// `None` while nothing is exported.
    pub meters: Option<Arc<ComponentMeters>>,
    /// Calls through links that led to this one (its own calls are one deeper).
    pub depth: u32,
    /// Until when the caller waits for it, when the caller has a time limit of its own.
    pub caller_deadline: Option<std::time::Instant>,
}

impl Invocation {
    /// Marks the invocation as made by a call `depth` links deep whose caller had `budget`
    /// of its time left when it called (counted from now).
    pub fn called(&mut self, depth: u32, budget: Option<Duration>) {
        self.depth = depth;
        self.caller_deadline = budget.map(|b| std::time::Instant::now() + b);
    }

    /// What is left of the caller's time, if it has a limit: an instance gets no longer
    /// than that, so a chain of calls ends with its first caller.
    pub fn caller_time_left(&self) -> Option<Duration> {
        self.caller_deadline
            .map(|d| d.saturating_duration_since(std::time::Instant::now()))
    }
}

/// What one run of an instance measured.
pub struct Measured {
    pub ran: std::time::Duration,
    pub memory_peak: u64,
    /// CPU time, on sampled invocations.
    pub cpu: Option<std::time::Duration>,
}

/// Reads what an instance's run measured (see [`RunningComponent::measured_instance`]).
pub struct Meter {
    started: std::time::Instant,
    memory_peak: Arc<std::sync::atomic::AtomicU64>,
    cpu: Option<Arc<std::sync::atomic::AtomicU64>>,
}

impl Meter {
    pub fn read(&self) -> Measured {
        Measured {
            ran: self.started.elapsed(),
            memory_peak: self.memory_peak.load(Ordering::Relaxed),
            cpu: self
                .cpu
                .as_ref()
                .map(|c| std::time::Duration::from_nanos(c.load(Ordering::Relaxed))),
        }
    }
}

/// One component running on this host.
pub struct RunningComponent {
    pub id: Arc<str>,
    pub loaded: LoadedComponent,
    pub(super) limits: RwLock<ComponentLimits>,
    pub(super) replicas: AtomicU32,
    /// One permit per replica: the most instances that run at once.
    pub(super) permits: Arc<Semaphore>,
    pub(super) queued: AtomicUsize,
    pub(super) annotations: RwLock<BTreeMap<String, String>>,
    /// The named configs it reads through `wasi:config/store`, and their merged values.
    pub(super) config: RwLock<(Vec<String>, ComponentConfig)>,
    pub(super) started_at: DateTime<Utc>,
    pub(super) cancel: CancellationToken,
    /// Ends running invocations at once (after the stop timeout).
    pub(super) interrupt: CancellationToken,
    pub(super) tracker: TaskTracker,
    /// What its instances are built with.
    pub(super) runtime: Arc<Runtime>,
    pub(super) linking: Linking,
    /// Live figures for `host.stats`.
    pub(super) stats: super::stats::Stats,
    /// Attributes of its metrics, made on first use.
    pub(super) meters: RwLock<Option<Arc<ComponentMeters>>>,
    /// Its pins, when it imports `wasi:gpio` or handles edges.
    pub gpio: Option<Arc<crate::gpio::ComponentPins>>,
    /// What its instances may reach beyond its links.
    pub(super) grants: RwLock<Arc<crate::runtime::grants::ResolvedGrants>>,
}

impl RunningComponent {
    pub fn limits(&self) -> ComponentLimits {
        self.limits.read().map(|l| *l).unwrap_or(ComponentLimits {
            max_memory_bytes: 64 << 20,
            timeout_ms: 10_000,
        })
    }

    /// The configuration new instances see.
    pub fn config(&self) -> ComponentConfig {
        self.config
            .read()
            .map(|c| Arc::clone(&c.1))
            .unwrap_or_default()
    }

    /// Whether it reads the named config `name`.
    pub fn uses_config(&self, name: &str) -> bool {
        self.config
            .read()
            .is_ok_and(|c| c.0.iter().any(|n| n == name))
    }

    /// Merges its named configs again from `configs` (a name that is gone contributes
    /// nothing), secrets opened, after one of them changed. A secret this host cannot open
    /// keeps the config it had (logged, naming config and key).
    pub fn remerge_config(
        &self,
        configs: &BTreeMap<String, Config>,
        secrets: &crate::secrets::HostSecrets,
    ) {
        if let Ok(mut c) = self.config.write() {
            let merged = match secrets.remerged(&c.0, configs) {
                Ok(merged) => merged,
                Err(err) => {
                    tracing::warn!(
                        component_id = %self.id,
                        %err,
                        "configuration change not applied"
                    );
                    return;
                }
            };
            c.1 = Arc::new(merged.into());
            if let Some(g) = &self.gpio {
                g.regrant(&c.1);
            }
        }
    }

    pub fn replicas(&self) -> u32 {
        self.replicas.load(Ordering::Acquire)
    }

    /// Instances running an invocation now.
    pub fn active_instances(&self) -> u32 {
        self.replicas()
            .saturating_sub(self.permits.available_permits() as u32)
    }

    /// Records how an invocation ended: span status, the live figures and the metrics.
    pub fn finish(&self, inv: &Invocation, m: Measured, failure: Option<&Failure>) {
        if let Some(f) = failure {
            trellis_telemetry::spans::fail(&inv.span, f.kind.as_str(), &f.message);
        }
        self.stats
            .record(m.ran, m.memory_peak, failure.is_some(), m.cpu);
        if let Some(meters) = &inv.meters {
            meters.invocation(
                m.ran,
                m.memory_peak,
                m.cpu,
                failure.map(|f| f.kind.as_str()),
            );
        }
    }

    /// An instance for `inv`, with its CPU time measured on a sample of invocations.
    pub fn measured_instance(&self, inv: &Invocation) -> (Instance, Meter) {
        let mut instance = self.instance(inv);
        let cpu = self.stats.sample_cpu().then(|| instance.measure_cpu());
        let meter = Meter {
            started: std::time::Instant::now(),
            memory_peak: instance.memory_peak(),
            cpu,
        };
        (instance, meter)
    }

    /// Its live figures.
    pub fn stats(&self) -> trellis_lattice::stats::ComponentStats {
        self.stats.snapshot(
            &self.id,
            self.app(),
            self.active_instances(),
            self.replicas(),
        )
    }

    /// The application that placed it (the manager's annotation), if any.
    pub fn app(&self) -> Option<String> {
        self.annotations
            .read()
            .ok()
            .and_then(|a| a.get(APP).cloned())
    }

    pub fn info(&self) -> ComponentInfo {
        ComponentInfo {
            id: self.id.to_string(),
            image: self.loaded.image.clone(),
            digest: self.loaded.digest.clone(),
            replicas: self.replicas(),
            limits: self.limits(),
            annotations: self
                .annotations
                .read()
                .map(|a| a.clone())
                .unwrap_or_default(),
            imports: self.loaded.imports.clone(),
            exports: self.loaded.exports.clone(),
            started_at: self.started_at,
        }
    }

    /// Waits for a free instance slot (one of `replicas`), or says why there is none.
    pub async fn admit(&self) -> Result<tokio::sync::OwnedSemaphorePermit, String> {
        let queued = self.queued.fetch_add(1, Ordering::AcqRel);
        let permit = if queued >= MAX_QUEUED {
            None
        } else {
            Arc::clone(&self.permits).acquire_owned().await.ok()
        };
        self.queued.fetch_sub(1, Ordering::AcqRel);
        permit.ok_or_else(|| {
            if self.cancel.is_cancelled() {
                format!("component {} is stopping", self.id)
            } else {
                format!(
                    "component {} is busy ({MAX_QUEUED} invocations already wait for one of its {} instance(s))",
                    self.id,
                    self.replicas()
                )
            }
        })
    }

    /// Work that must finish before the component counts as stopped.
    pub fn tracker(&self) -> &TaskTracker {
        &self.tracker
    }

    /// Opens the span of one invocation of `function`, continuing the caller's context
    /// `incoming`; returns it with the context its own calls carry.
    pub fn begin(&self, function: &str, incoming: Option<TraceContext>) -> Invocation {
        if !trellis_telemetry::enabled() {
            return Invocation {
                span: tracing::Span::none(),
                trace: trellis_telemetry::context::continue_remote(
                    &tracing::Span::none(),
                    incoming,
                ),
                meters: None,
                depth: 0,
                caller_deadline: None,
            };
        }
        // Not sampled (the caller's decision, or this new trace's): no spans, only the
        // context handed on, marked so.
        let sampled = trellis_telemetry::sampling::decide(incoming.as_ref());
        let span = if sampled {
            trellis_telemetry::spans::invocation(&self.id, function)
        } else {
            tracing::Span::none()
        };
        let mut trace = trellis_telemetry::context::continue_remote(&span, incoming);
        trace.sampled &= sampled;
        Invocation {
            span,
            trace,
            meters: self.meters(),
            depth: 0,
            caller_deadline: None,
        }
    }

    /// Its instruments, bound once (and again after its annotations change).
    fn meters(&self) -> Option<Arc<ComponentMeters>> {
        if let Some(meters) = self.meters.read().ok().and_then(|m| m.clone()) {
            return Some(meters);
        }
        let meters = Arc::new(ComponentMeters::bind(&self.id, self.app().as_deref())?);
        if let Ok(mut cached) = self.meters.write() {
            *cached = Some(Arc::clone(&meters));
        }
        Some(meters)
    }

    /// Forgets its bound instruments (its annotations changed).
    pub(super) fn annotations_changed(&self) {
        if let Ok(mut cached) = self.meters.write() {
            *cached = None;
        }
    }

    /// Waits for a free instance slot for `inv` (see [`Self::admit`]), measured as its
    /// queue wait.
    pub async fn admit_for(
        &self,
        inv: &Invocation,
    ) -> Result<tokio::sync::OwnedSemaphorePermit, String> {
        let started = std::time::Instant::now();
        let waiting = trellis_telemetry::spans::queue_wait(&inv.span, &inv.trace);
        let admitted = self.admit().await;
        drop(waiting);
        if let Some(meters) = &inv.meters {
            meters.queue_wait(started.elapsed());
        }
        if let Err(why) = &admitted {
            trellis_telemetry::spans::fail(&inv.span, RemoteErrorKind::Unavailable.as_str(), why);
        }
        admitted
    }

    /// A fresh instance for the invocation `inv`.
    pub fn instance(&self, inv: &Invocation) -> Instance {
        let mut limits = self.limits();
        if let Some(left) = inv.caller_time_left() {
            let left_ms = u64::try_from(left.as_millis()).unwrap_or(u64::MAX);
            limits.timeout_ms = limits.timeout_ms.min(left_ms.max(1));
        }
        self.runtime.instance(
            &self.linking,
            InstanceSpec {
                component_id: Arc::clone(&self.id),
                limits,
                depth: inv.depth,
                config: self.config(),
                trace: inv.trace,
                span: inv.span.clone(),
                interrupt: self.interrupt.clone(),
                gpio: self.gpio.clone(),
                grants: self
                    .grants
                    .read()
                    .map(|g| Arc::clone(&g))
                    .unwrap_or_default(),
            },
        )
    }

    /// Whether it is being stopped.
    pub fn cancelled(&self) -> &CancellationToken {
        &self.cancel
    }

    pub(super) fn set_replicas(&self, n: u32) {
        let old = self.replicas.swap(n, Ordering::AcqRel);
        if n > old {
            self.permits.add_permits((n - old) as usize);
        } else if n < old {
            let mut excess = (old - n) as usize;
            excess -= self.permits.forget_permits(excess);
            if excess > 0 {
                // Instances still running hold the rest; retire their permits as they finish.
                let permits = Arc::clone(&self.permits);
                tokio::spawn(async move {
                    if let Ok(p) = permits.acquire_many_owned(excess as u32).await {
                        p.forget();
                    }
                });
            }
        }
    }

    /// Stops taking invocations and waits (up to `timeout`) for those in flight, including
    /// those accepted and still waiting for an instance: a replaced copy drains instead of
    /// refusing them. Whatever still waits at the timeout is refused.
    pub async fn stop(&self, timeout: Duration) {
        self.drain(timeout).await;
        if let Some(g) = &self.gpio {
            g.release_all();
        }
    }

    async fn drain(&self, timeout: Duration) {
        self.cancel.cancel();
        self.tracker.close();
        if tokio::time::timeout(timeout, self.tracker.wait())
            .await
            .is_ok()
        {
            return;
        }
        // Whatever still runs is ended now (a spinning guest at its next epoch tick), so a
        // stopped component holds no CPU and no memory past its stop timeout.
        self.permits.close();
        self.interrupt.cancel();
        let running = self.tracker.len();
        if tokio::time::timeout(INTERRUPT_GRACE, self.tracker.wait())
            .await
            .is_ok()
        {
            tracing::warn!(component_id = %self.id, interrupted = running, "invocations still running at the stop timeout were interrupted");
        } else {
            tracing::error!(component_id = %self.id, "invocations did not end even when interrupted; abandoning them");
        }
    }
}
