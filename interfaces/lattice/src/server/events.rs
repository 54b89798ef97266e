//! Publishing lattice events as CloudEvents: the one publisher hosts, providers and the
//! deployment manager share.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt as _;

use crate::event::{Event, Sequence};
use crate::subject::Subjects;
use crate::trace::TraceContext;

/// Where events go: the lattice ([`EventPublisher`]), or a recorder in a test.
pub trait EventSink: Send + Sync {
    /// Publishes `event`, carrying the trace of the request that caused it (`None` for
    /// events nobody asked for, like heartbeats).
    fn publish<'a>(&'a self, event: Event, cause: Option<&'a TraceContext>) -> BoxFuture<'a, ()>;
}

impl EventSink for EventPublisher {
    fn publish<'a>(&'a self, event: Event, cause: Option<&'a TraceContext>) -> BoxFuture<'a, ()> {
        EventPublisher::publish(self, event, cause).boxed()
    }
}

/// Publishes events of one lattice from one source (a host, a provider, a manager).
#[derive(Clone)]
pub struct EventPublisher {
    nats: async_nats::Client,
    subjects: Subjects,
    source: Arc<str>,
    epoch: u64,
    published: Arc<AtomicU64>,
}

impl EventPublisher {
    pub fn new(nats: async_nats::Client, subjects: Subjects, source: impl Into<Arc<str>>) -> Self {
        let epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Self {
            nats,
            subjects,
            source: source.into(),
            epoch,
            published: Arc::default(),
        }
    }

    /// Where the publisher stands now: what an inventory read now is as new as.
    pub fn sequence(&self) -> Sequence {
        Sequence {
            epoch: self.epoch,
            n: self.published.load(Ordering::Acquire),
        }
    }

    /// Who the events come from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Publishes `event`, carrying the trace of the request that caused it (`None` for events
    /// nobody asked for, like heartbeats). Failures are logged, never fatal: events are
    /// notifications.
    pub async fn publish(&self, event: Event, cause: Option<&TraceContext>) {
        let ty = event.event_type().to_string();
        let seq = Sequence {
            epoch: self.epoch,
            n: self.published.fetch_add(1, Ordering::AcqRel) + 1,
        };
        let payload = event
            .to_cloud_event(
                &self.source,
                self.subjects.lattice(),
                cause.map(|t| t.to_string()),
                Some(seq),
            )
            .and_then(|ce| {
                serde_json::to_vec(&ce).map_err(|e| crate::error::Error::malformed("event", e))
            });
        let payload = match payload {
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
