//! Publishing lattice events as CloudEvents.

use trellis_lattice::event::Event;
use trellis_lattice::trace::TraceContext;
use trellis_lattice::Subjects;

pub struct Events {
    nats: async_nats::Client,
    subjects: Subjects,
    source: String,
}

impl Events {
    pub fn new(nats: async_nats::Client, subjects: Subjects, source: String) -> Self {
        Self {
            nats,
            subjects,
            source,
        }
    }

    /// Publishes an event; failures are logged, never fatal (events are notifications).
    pub async fn publish(&self, event: Event, trace: Option<TraceContext>) {
        let ty = event.event_type().to_string();
        let ce = match event.to_cloud_event(
            &self.source,
            self.subjects.lattice(),
            trace.map(|t| t.to_string()),
        ) {
            Ok(ce) => ce,
            Err(err) => {
                tracing::warn!(%err, event = %ty, "cannot encode event");
                return;
            }
        };
        let payload = match serde_json::to_vec(&ce) {
            Ok(p) => p,
            Err(err) => {
                tracing::warn!(%err, event = %ty, "cannot encode event");
                return;
            }
        };
        if let Err(err) = self
            .nats
            .publish(self.subjects.event(&ty), payload.into())
            .await
        {
            tracing::warn!(%err, event = %ty, "cannot publish event");
        }
    }
}
