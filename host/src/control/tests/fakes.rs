//! In-memory stand-ins for the parts the router talks to, recording what they were asked.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use chrono::Utc;
use futures::future::BoxFuture;
use futures::FutureExt as _;
use trellis_lattice::control::{
    ComponentScaled, ProviderStartedReply, ScaleComponent, StartProvider,
};
use trellis_lattice::event::Event;
use trellis_lattice::inventory::{HostInventory, HostResources};
use trellis_lattice::link::{Config, Link, LinkKey};
use trellis_lattice::server::{Answer, ControlRequest, EventSink};
use trellis_lattice::trace::TraceContext;
use trellis_lattice::{ControlError, Subjects};

use crate::control::parts::{ComponentControl, HostControl, ImportsLookup, ProviderControl};
use crate::control::state::StateHandlers;
use crate::control::Router;
use crate::labels::HostLabels;
use crate::lattice_kv::StateStore;
use crate::links::LinkTable;

pub const HOST: &str = "NAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

#[derive(Default)]
pub struct FakeHost {
    pub stops: Mutex<Vec<Option<u64>>>,
}

impl HostControl for FakeHost {
    fn host_id(&self) -> &str {
        HOST
    }

    fn friendly_name(&self) -> &str {
        "quiet-otter-0001"
    }

    fn inventory(&self) -> HostInventory {
        HostInventory {
            host_id: HOST.into(),
            friendly_name: "quiet-otter-0001".into(),
            lattice: "test".into(),
            labels: Default::default(),
            version: "0".into(),
            uptime_seconds: 1,
            started_at: Utc::now(),
            components: vec![],
            providers: vec![],
            resources: HostResources::default(),
            heartbeat_interval_ms: 5000,
            seq: None,
            page: None,
        }
    }

    fn stats(&self) -> trellis_lattice::stats::HostStats {
        trellis_lattice::stats::HostStats {
            host_id: HOST.into(),
            friendly_name: "quiet-otter-0001".into(),
            uptime_ms: 1000,
            components: vec![],
        }
    }

    fn max_message_bytes(&self) -> usize {
        1 << 20
    }

    fn request_stop(&self, timeout_ms: Option<u64>) {
        self.stops.lock().unwrap().push(timeout_ms);
    }
}

/// Components: what runs (id → imports), what scale requests came, and an answer to give.
#[derive(Default)]
pub struct FakeComponents {
    pub running: Mutex<HashMap<String, Vec<String>>>,
    pub scales: Mutex<Vec<ScaleComponent>>,
    pub fail_with: Mutex<Option<ControlError>>,
}

impl ComponentControl for FakeComponents {
    fn scale(&self, req: ScaleComponent) -> BoxFuture<'_, Result<ComponentScaled, ControlError>> {
        async move {
            self.scales.lock().unwrap().push(req.clone());
            if let Some(err) = self.fail_with.lock().unwrap().clone() {
                return Err(err);
            }
            Ok(ComponentScaled {
                host_id: HOST.into(),
                component_id: req.component_id,
                image: req.image,
                digest: "sha256:00".into(),
                replicas: req.replicas,
                annotations: Default::default(),
                compiled: None,
            })
        }
        .boxed()
    }

    fn is_running(&self, id: &str) -> bool {
        self.running.lock().unwrap().contains_key(id)
    }

    fn imports_of(&self, id: &str) -> Option<Vec<String>> {
        self.running.lock().unwrap().get(id).cloned()
    }

    fn count(&self) -> usize {
        self.running.lock().unwrap().len()
    }
}

#[derive(Default)]
pub struct FakeProviders {
    /// id → image
    pub running: Mutex<HashMap<String, String>>,
    pub fail_with: Mutex<Option<ControlError>>,
}

impl ProviderControl for FakeProviders {
    fn start(
        &self,
        req: StartProvider,
    ) -> BoxFuture<'_, Result<(ProviderStartedReply, bool), ControlError>> {
        async move {
            if let Some(err) = self.fail_with.lock().unwrap().clone() {
                return Err(err);
            }
            let reply = ProviderStartedReply {
                host_id: HOST.into(),
                provider_id: req.provider_id.clone(),
                image: req.image.clone(),
            };
            let mut running = self.running.lock().unwrap();
            let started = running.insert(req.provider_id, req.image).is_none();
            Ok((reply, started))
        }
        .boxed()
    }

    fn stop<'a>(&'a self, provider_id: &'a str) -> BoxFuture<'a, Result<(), ControlError>> {
        async move {
            match self.running.lock().unwrap().remove(provider_id) {
                Some(_) => Ok(()),
                None => Err(ControlError::not_found(format!(
                    "provider {provider_id} does not run on this host"
                ))),
            }
        }
        .boxed()
    }

    fn is_running(&self, id: &str) -> bool {
        self.running.lock().unwrap().contains_key(id)
    }

    fn count(&self) -> usize {
        self.running.lock().unwrap().len()
    }
}

/// Links and configs in memory; `down` makes every call fail as an unreachable store would.
#[derive(Default)]
pub struct MemoryStore {
    pub links: Mutex<BTreeMap<LinkKey, Link>>,
    pub configs: Mutex<BTreeMap<String, Config>>,
    pub down: Mutex<bool>,
}

impl MemoryStore {
    fn up(&self) -> Result<(), ControlError> {
        if *self.down.lock().unwrap() {
            Err(ControlError::unavailable("lattice store unavailable: down"))
        } else {
            Ok(())
        }
    }
}

type Answering<'a, T> = BoxFuture<'a, Result<T, ControlError>>;

impl StateStore for MemoryStore {
    fn links(&self) -> Answering<'_, Vec<Link>> {
        async move {
            self.up()?;
            Ok(self.links.lock().unwrap().values().cloned().collect())
        }
        .boxed()
    }

    fn link<'a>(&'a self, key: &'a LinkKey) -> Answering<'a, Option<Link>> {
        async move {
            self.up()?;
            Ok(self.links.lock().unwrap().get(key).cloned())
        }
        .boxed()
    }

    fn put_link<'a>(&'a self, link: &'a Link) -> Answering<'a, ()> {
        async move {
            self.up()?;
            self.links.lock().unwrap().insert(link.key(), link.clone());
            Ok(())
        }
        .boxed()
    }

    fn delete_link<'a>(&'a self, key: &'a LinkKey) -> Answering<'a, bool> {
        async move {
            self.up()?;
            Ok(self.links.lock().unwrap().remove(key).is_some())
        }
        .boxed()
    }

    fn config<'a>(&'a self, name: &'a str) -> Answering<'a, Option<Config>> {
        async move {
            self.up()?;
            Ok(self.configs.lock().unwrap().get(name).cloned())
        }
        .boxed()
    }

    fn put_config<'a>(&'a self, name: &'a str, values: &'a Config) -> Answering<'a, ()> {
        async move {
            self.up()?;
            self.configs
                .lock()
                .unwrap()
                .insert(name.to_string(), values.clone());
            Ok(())
        }
        .boxed()
    }

    fn delete_config<'a>(&'a self, name: &'a str) -> Answering<'a, bool> {
        async move {
            self.up()?;
            Ok(self.configs.lock().unwrap().remove(name).is_some())
        }
        .boxed()
    }
}

/// What other hosts would say a component imports.
#[derive(Default)]
pub struct FakeImports(pub Mutex<HashMap<String, Vec<String>>>);

impl ImportsLookup for FakeImports {
    fn imports_of<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Option<Vec<String>>> {
        async move { self.0.lock().unwrap().get(id).cloned() }.boxed()
    }
}

/// Every event published, with the trace it carried.
#[derive(Default)]
pub struct RecordedEvents(pub Mutex<Vec<(Event, Option<TraceContext>)>>);

impl EventSink for RecordedEvents {
    fn publish<'a>(&'a self, event: Event, cause: Option<&'a TraceContext>) -> BoxFuture<'a, ()> {
        self.0.lock().unwrap().push((event, cause.copied()));
        async {}.boxed()
    }
}

/// A router over fakes, and handles on each of them.
pub struct Bench {
    pub router: Router,
    pub host: Arc<FakeHost>,
    pub components: Arc<FakeComponents>,
    pub providers: Arc<FakeProviders>,
    pub store: Arc<MemoryStore>,
    pub imports: Arc<FakeImports>,
    pub links: Arc<LinkTable>,
    pub events: Arc<RecordedEvents>,
    pub subjects: Subjects,
    pub trace: TraceContext,
}

impl Bench {
    pub fn new() -> Self {
        let (host, components, providers) = (
            Arc::new(FakeHost::default()),
            Arc::new(FakeComponents::default()),
            Arc::new(FakeProviders::default()),
        );
        let (store, imports, links, events) = (
            Arc::new(MemoryStore::default()),
            Arc::new(FakeImports::default()),
            Arc::new(LinkTable::default()),
            Arc::new(RecordedEvents::default()),
        );
        let labels = [("tier".to_string(), "edge".to_string())].into();
        let router = Router {
            host: host.clone(),
            labels: Arc::new(HostLabels::new(labels)),
            components: components.clone(),
            providers: providers.clone(),
            state: StateHandlers {
                store: store.clone(),
                imports: imports.clone(),
                links: links.clone(),
                events: events.clone(),
            },
            events: events.clone(),
            gpio: trellis_gpio::Chips::new(std::env::temp_dir().join("trellis-no-gpio")),
        };
        Self {
            router,
            host,
            components,
            providers,
            store,
            imports,
            links,
            events,
            subjects: Subjects::new("test"),
            trace: TraceContext::new_root(),
        }
    }

    /// Sends `payload` on `subject` through the router, as the serve loop would.
    pub async fn send(&self, subject: &str, payload: &str) -> Option<Answer> {
        let request = ControlRequest::parse(&self.subjects, subject, payload.as_bytes());
        let name = ControlRequest::name_of(&self.subjects, subject);
        let answered = std::sync::Mutex::new(None);
        self.router
            .serve(request, name, &self.trace, |answer| {
                *answered.lock().unwrap() = Some(answer);
                std::future::ready(())
            })
            .await;
        answered.into_inner().unwrap()
    }

    /// Like [`Self::send`], for requests that must be answered.
    pub async fn ask(&self, subject: &str, payload: &str) -> Answer {
        self.send(subject, payload)
            .await
            .unwrap_or_else(|| panic!("no answer on {subject}"))
    }

    /// The events so far; each carried this bench's request trace.
    pub fn events(&self) -> Vec<Event> {
        let recorded = self.events.0.lock().unwrap();
        for (event, trace) in recorded.iter() {
            assert_eq!(
                trace.as_ref(),
                Some(&self.trace),
                "{} lost the request's trace",
                event.event_type()
            );
        }
        recorded.iter().map(|(e, _)| e.clone()).collect()
    }
}

/// The kind of a failed answer.
pub fn kind(answer: &Answer) -> trellis_lattice::ErrorKind {
    match answer {
        Err(e) => e.kind,
        Ok(v) => panic!("expected an error, got {v}"),
    }
}
