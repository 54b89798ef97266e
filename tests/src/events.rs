//! Collects lattice events from the moment it starts, for assertions.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt as _;
use trellis_lattice::event::{CloudEvent, Event};
use trellis_lattice::LatticeClient;

pub struct EventLog {
    events: Arc<Mutex<Vec<CloudEvent>>>,
    task: tokio::task::JoinHandle<()>,
}

impl EventLog {
    /// Starts collecting; returns once the subscription is live.
    pub async fn start(client: &LatticeClient) -> Self {
        let mut stream = client.watch_events().await.expect("watching events");
        client.nats().flush().await.expect("flush");
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&events);
        let task = tokio::spawn(async move {
            while let Some(ev) = stream.next().await {
                sink.lock().expect("event log").push(ev);
            }
        });
        Self { events, task }
    }

    pub fn all(&self) -> Vec<CloudEvent> {
        self.events.lock().expect("event log").clone()
    }

    /// Typed events seen so far.
    pub fn typed(&self) -> Vec<Event> {
        self.all().iter().filter_map(|e| e.event().ok()).collect()
    }

    /// Waits for an event matching `pred` (including ones already seen).
    pub async fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Event) -> bool,
    ) -> Event {
        crate::wait::wait_for(what, timeout, || {
            let found = self.typed().into_iter().find(|e| pred(e));
            async move { found }
        })
        .await
    }

    /// Waits until `count` events matching `pred` were seen after the first `skip` events.
    pub async fn wait_for_count(
        &self,
        what: &str,
        timeout: Duration,
        skip: usize,
        count: usize,
        pred: impl Fn(&Event) -> bool,
    ) {
        crate::wait::wait_for(what, timeout, || {
            let seen = self
                .all()
                .iter()
                .skip(skip)
                .filter_map(|e| e.event().ok())
                .filter(|e| pred(e))
                .count();
            async move { (seen >= count).then_some(()) }
        })
        .await
    }
}

impl Drop for EventLog {
    fn drop(&mut self) {
        self.task.abort();
    }
}
