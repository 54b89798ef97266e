//! The reconcile loop: the thin machinery around the pure scalers.
//!
//! One task owns the [`LatticeView`] and the app records. Everything else reaches it as an
//! [`Input`]: lattice events, app record changes (a KV watch), snapshots of the lattice (a
//! full pass every [`Settings::full_pass`]), probes of silent hosts, and command results.
//! After anything that changes the model it plans every app with [`scaler::plan`] (at most
//! every [`MIN_PASS_GAP`]); the leader then runs each app's commands as a job in its own
//! task (one job per app at a time) and writes the app's status when it changed.

mod exec;
mod input;
mod liveness;
mod planning;
mod settings;
mod status;
#[cfg(test)]
mod unreachable_tests;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use trellis_lattice::app::AppStatus;
use trellis_lattice::event::{CloudEvent, Event, APP_STATUS_EVENT};
use trellis_lattice::server::EventPublisher;
use trellis_lattice::LatticeClient;

pub use exec::execute;
pub use settings::Settings;

use crate::records::{AppRecord, AppStore};
use crate::scaler::Command;
use crate::view::LatticeView;
use input::{snapshot, Input, Probe};
use planning::Finish;

/// Passes are at most this close together, so a burst of events makes one pass.
const MIN_PASS_GAP: Duration = Duration::from_millis(20);
/// How often timers (silent hosts, retries) are checked.
const TICK: Duration = Duration::from_millis(50);
/// A status that only changed in its counts is written at most this often.
const STATUS_THROTTLE: Duration = Duration::from_millis(250);

struct Reconciler {
    client: Arc<LatticeClient>,
    store: AppStore,
    instance: String,
    events: EventPublisher,
    settings: Settings,
    tx: mpsc::Sender<Input>,
    tasks: JoinSet<()>,
    view: LatticeView,
    records: BTreeMap<String, AppRecord>,
    leader: watch::Receiver<bool>,
    /// Set while leading: a snapshot taken since we lead, and when we may act.
    ready_at: Option<Instant>,
    snapshot_since_lead: bool,
    /// A snapshot since we lead held every host the presence stream holds as live.
    heard_everyone: bool,
    /// A pass has acted since this instance began to lead (the warm-up is over).
    acted: bool,
    listening_since: Instant,
    refreshing: bool,
    last_refresh: Instant,
    jobs: HashSet<String>,
    /// Hosts whose paged inventory is being read.
    reading: HashSet<String>,
    storing: HashSet<String>,
    backoff: exec::Backoff,
    written: HashMap<String, (AppStatus, Instant)>,
    limit: Arc<Semaphore>,
    dirty: bool,
    last_pass: Instant,
}

/// Runs the loop until `shutdown`.
pub(crate) async fn run(
    client: Arc<LatticeClient>,
    store: AppStore,
    instance: String,
    settings: Settings,
    leader: watch::Receiver<bool>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let (tx, mut rx) = mpsc::channel::<Input>(4096);
    let mut tasks = JoinSet::new();

    // Lattice events, from before the first snapshot so nothing falls between them.
    let mut events = client.watch_events().await?;
    client.nats().flush().await.ok();
    let listening_since = Instant::now();
    let etx = tx.clone();
    tasks.spawn(async move {
        while let Some(ev) = events.next().await {
            if ev.short_type() == APP_STATUS_EVENT {
                continue;
            }
            if etx.send(Input::Event(Box::new(ev))).await.is_err() {
                return;
            }
        }
    });
    // App records: every record now, then each change.
    let mut records = store.watch_records().await?;
    let rtx = tx.clone();
    tasks.spawn(async move {
        while let Some((name, record)) = records.next().await {
            if rtx
                .send(Input::Record(name, record.map(Box::new)))
                .await
                .is_err()
            {
                return;
            }
        }
    });

    let events = EventPublisher::new(
        client.nats().clone(),
        client.subjects().clone(),
        instance.clone(),
    );
    let mut r = Reconciler {
        client,
        store,
        instance,
        events,
        settings,
        tx,
        tasks,
        view: LatticeView::default(),
        records: BTreeMap::new(),
        leader,
        ready_at: None,
        snapshot_since_lead: false,
        heard_everyone: false,
        acted: false,
        listening_since,
        refreshing: false,
        last_refresh: Instant::now(),
        jobs: HashSet::new(),
        reading: HashSet::new(),
        storing: HashSet::new(),
        backoff: exec::Backoff::default(),
        written: HashMap::new(),
        limit: Arc::new(Semaphore::new(settings.max_commands.max(1))),
        dirty: true,
        last_pass: Instant::now() - MIN_PASS_GAP,
    };
    r.refresh();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            changed = r.leader.changed() => {
                if changed.is_err() {
                    break;
                }
                r.leadership_changed();
            }
            input = rx.recv() => match input {
                Some(input) => r.input(input),
                None => break,
            },
            _ = tick.tick() => r.timers(),
            // A change arrived too soon after the last pass: plan once the gap is over.
            _ = tokio::time::sleep_until(r.last_pass + MIN_PASS_GAP), if r.dirty => {}
        }
        if r.dirty && r.last_pass.elapsed() >= MIN_PASS_GAP {
            r.pass();
        }
    }
    r.tasks.shutdown().await;
    Ok(())
}

impl Reconciler {
    fn leading(&self) -> bool {
        *self.leader.borrow()
    }

    fn leadership_changed(&mut self) {
        if self.leading() {
            tracing::info!(instance = %self.instance, "leading: refreshing the lattice before acting");
            self.snapshot_since_lead = false;
            self.heard_everyone = false;
            self.ready_at = None;
            self.acted = false;
            self.written.clear();
            self.refresh();
        } else {
            tracing::info!(instance = %self.instance, "following");
            self.ready_at = None;
        }
        self.dirty = true;
    }

    /// Whether this instance may execute commands and write status now.
    fn acting(&mut self) -> bool {
        if !self.leading() || !self.snapshot_since_lead {
            return false;
        }
        if self.heard_everyone {
            return true;
        }
        let ready_at = *self.ready_at.get_or_insert_with(|| {
            // Listen for a heartbeat interval before acting, so every live host has been heard.
            let warmup = self
                .view
                .max_interval()
                .map(|i| i + Duration::from_millis(250))
                .unwrap_or(Duration::from_secs(1))
                .min(self.settings.max_warmup);
            self.listening_since + warmup
        });
        Instant::now() >= ready_at
    }

    fn refresh(&mut self) {
        if self.refreshing {
            return;
        }
        self.refreshing = true;
        self.last_refresh = Instant::now();
        let client = Arc::clone(&self.client);
        let store = self.store.clone();
        let tx = self.tx.clone();
        self.tasks.spawn(async move {
            let started = Instant::now();
            let input = match snapshot(&client, &store).await {
                Ok((mut snap, everyone)) => {
                    snap.started = Some(started);
                    Input::Snapshot(snap, everyone)
                }
                Err(e) => Input::SnapshotFailed(e.to_string()),
            };
            let _ = tx.send(input).await;
        });
    }

    fn input(&mut self, input: Input) {
        match input {
            Input::Event(ev) => self.event(&ev),
            Input::Record(name, record) => {
                match record {
                    Some(r) => {
                        self.records.insert(name.clone(), *r);
                    }
                    None => {
                        self.records.remove(&name);
                        self.written.remove(&name);
                    }
                }
                self.dirty = true;
            }
            Input::Snapshot(snap, everyone) => {
                self.refreshing = false;
                self.view.snapshot(snap);
                if self.leading() {
                    self.snapshot_since_lead = true;
                    if everyone && !self.acted && !self.heard_everyone {
                        // Every live host is in the view: nothing is left to hear before
                        // acting, so the warm-up ends now.
                        tracing::info!(instance = %self.instance, "every live host heard: acting");
                        self.heard_everyone = true;
                    }
                }
                // A periodic full pass plans even when nothing seemed to change.
                self.dirty = true;
            }
            Input::SnapshotFailed(reason) => {
                self.refreshing = false;
                tracing::warn!(reason, "could not read the lattice");
            }
            Input::Config(name, value) => {
                self.dirty |= self.view.config(&name, value);
            }
            Input::Probe(host, probe) => {
                self.reading.remove(&host);
                match probe {
                    Probe::Alive(inv) => {
                        self.dirty |= self.view.inventory(&inv);
                    }
                    Probe::Gone => {
                        // No subscriber for the host's subjects: it died, or its leaf
                        // lost the hub. Either way it may come back as it was.
                        self.view.probe_unanswered(&host);
                        if self.view.mark_unreachable(&host) {
                            tracing::warn!(host_id = %host, "host is unreachable (nobody answers for it)");
                            self.dirty = true;
                        }
                    }
                    Probe::NoAnswer => self.view.probe_unanswered(&host),
                }
            }
            Input::Done {
                app,
                command,
                result,
            } => {
                match result {
                    Ok(()) => {
                        self.backoff.succeeded(&command);
                        self.view.applied(&app, command);
                    }
                    Err(reason) => self.backoff.failed(command, reason),
                }
                self.dirty = true;
            }
            Input::JobDone { app } => {
                self.jobs.remove(&app);
                self.dirty = true;
            }
            Input::StoreDone { app } => {
                self.storing.remove(&app);
                self.dirty = true;
            }
        }
    }

    fn event(&mut self, ev: &CloudEvent) {
        let event = match ev.event() {
            Ok(e) => e,
            Err(err) => {
                tracing::debug!(%err, "ignoring an event");
                return;
            }
        };
        match &event {
            Event::ConfigSet(c) => self.read_config(&c.name),
            Event::ConfigDeleted(c) => {
                self.dirty |= self.view.config(&c.name, None);
            }
            Event::HostStopped(h) => {
                tracing::info!(host_id = %h.host_id, reason = %h.reason, "host stopped");
            }
            Event::HostStarted(h) => {
                tracing::info!(host_id = %h.host_id, "host joined");
            }
            Event::HostHeartbeat(inv) if inv.is_partial() => self.read_inventory(&inv.host_id),
            _ => {}
        }
        self.dirty |= self.view.event(&ev.source, ev.sequence(), &event);
    }

    /// Reads the whole inventory of a host whose heartbeat was one page of it.
    fn read_inventory(&mut self, host: &str) {
        if !self.reading.insert(host.to_string()) {
            return;
        }
        let client = Arc::clone(&self.client);
        let tx = self.tx.clone();
        let host = host.to_string();
        self.tasks.spawn(async move {
            let probe = match client.inventory(&host).await {
                Ok(inv) => Probe::Alive(Box::new(inv)),
                Err(err) => {
                    tracing::warn!(host_id = %host, %err, "cannot read the host's inventory; its workloads are left as last seen");
                    Probe::NoAnswer
                }
            };
            let _ = tx.send(Input::Probe(host, probe)).await;
        });
    }

    fn read_config(&mut self, name: &str) {
        let client = Arc::clone(&self.client);
        let tx = self.tx.clone();
        let name = name.to_string();
        self.tasks.spawn(async move {
            match client.named_config(&name).await {
                Ok(value) => {
                    let _ = tx.send(Input::Config(name, value)).await;
                }
                Err(err) => tracing::warn!(%err, name, "cannot read a named config"),
            }
        });
    }

    fn timers(&mut self) {
        let now = Instant::now();
        crate::observe::heartbeat_ages(self.view.heartbeat_ages(now));
        self.check_liveness(now);
        if self
            .backoff
            .next_retry(self.last_pass)
            .is_some_and(|t| t <= now)
        {
            self.dirty = true;
        }
        if !self.refreshing && self.last_refresh.elapsed() >= self.settings.full_pass {
            self.backoff.prune(now);
            self.refresh();
        }
        // Reap finished helper tasks.
        while self.tasks.try_join_next().is_some() {}
        if self.leading() && !self.acted {
            // Warming up: plan on every tick until one pass acted, so the first pass after
            // the warm-up runs at once rather than with the next change or full pass.
            self.dirty = true;
        }
    }

    /// Plans every app; the leader acts on the plans and writes status.
    fn pass(&mut self) {
        self.dirty = false;
        self.last_pass = Instant::now();
        let acting = self.acting();
        self.acted |= acting;
        let names: Vec<String> = self.records.keys().cloned().collect();
        for name in names {
            let Some(record) = self.records.get(&name) else {
                continue;
            };
            let planned = planning::plan_app(record, self.view.observed(), &self.backoff);
            if !acting {
                continue;
            }
            self.write_status(planned.status);
            if let Some(finish) = planned.finish {
                self.finish(&name, finish);
            }
            if !self.jobs.contains(&name) && !planned.commands.is_empty() {
                self.start_job(&name, planned.commands);
            }
        }
    }

    fn start_job(&mut self, app: &str, commands: Vec<Command>) {
        tracing::debug!(app, commands = commands.len(), "executing");
        self.jobs.insert(app.to_string());
        self.tasks.spawn(exec::run_job(
            Arc::clone(&self.client),
            self.store.clone(),
            app.to_string(),
            commands,
            self.tx.clone(),
            Arc::clone(&self.limit),
        ));
    }

    fn write_status(&mut self, st: AppStatus) {
        let now = Instant::now();
        if let Some((prev, at)) = self.written.get(&st.name) {
            if status::same(prev, &st) {
                return;
            }
            let minor = prev.status == st.status
                && prev.generation == st.generation
                && prev.version == st.version;
            if minor && now.duration_since(*at) < STATUS_THROTTLE {
                // Written soon; keep planning until then.
                self.dirty = true;
                return;
            }
        }
        if self
            .written
            .get(&st.name)
            .is_none_or(|(prev, _)| prev.status != st.status || prev.version != st.version)
        {
            tracing::info!(app = %st.name, version = ?st.version, status = %st.status, reason = ?st.reason, "app status");
        }
        self.written.insert(st.name.clone(), (st.clone(), now));
        let store = self.store.clone();
        let events = self.events.clone();
        self.tasks.spawn(async move {
            if let Err(err) = store.put_status(&st).await {
                tracing::warn!(%err, app = %st.name, "cannot store app status");
            }
            events.publish(Event::AppStatus(Box::new(st)), None).await;
        });
    }

    fn finish(&mut self, app: &str, finish: Finish) {
        if !self.storing.insert(app.to_string()) {
            return;
        }
        let store = self.store.clone();
        let tx = self.tx.clone();
        let app = app.to_string();
        self.tasks.spawn(async move {
            let result = planning::record(&store, &app, finish).await;
            if let Err(err) = result {
                tracing::warn!(%err, app, "cannot update the app record");
            }
            let _ = tx.send(Input::StoreDone { app }).await;
        });
    }
}
