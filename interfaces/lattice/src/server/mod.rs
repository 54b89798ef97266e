//! The serving half of the protocol, used by hosts, providers and the deployment manager
//! alike: subscriptions whose messages arrive parsed into typed requests ([`Incoming`]), one
//! way to answer them ([`Incoming::respond`]), and one way to publish the events they cause
//! ([`EventPublisher`]).
//!
//! - [`requests`]: every request, parsed once from subject and payload.
//! - [`events`]: the event publisher.

pub mod checks;
pub mod events;
pub mod requests;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt as _;
use serde::Serialize;

pub use events::{EventPublisher, EventSink};
pub use requests::{AppRequest, ControlRequest, HostRequest, StateRequest};

use crate::control::Reply;
use crate::error::{ControlError, Error, Result};
use crate::subject::Subjects;
use crate::trace::TraceContext;

/// What a handler answers: the reply's data as JSON, or the error.
pub type Answer = std::result::Result<serde_json::Value, ControlError>;

/// Turns a handler's typed result into an [`Answer`].
pub fn answer<T: Serialize>(result: std::result::Result<T, ControlError>) -> Answer {
    result.and_then(|data| {
        serde_json::to_value(data)
            .map_err(|e| ControlError::internal(format!("cannot encode the reply: {e}")))
    })
}

/// Encodes an answer as the reply payload every control reply has.
pub fn encode(answer: Answer) -> Bytes {
    match serde_json::to_vec(&Reply::from_result(answer)) {
        Ok(body) => body.into(),
        Err(err) => {
            // A `serde_json::Value` always encodes; this only guards the impossible.
            tracing::error!(%err, "cannot encode a control reply");
            Bytes::new()
        }
    }
}

/// One request as a server receives it.
pub struct Incoming<R> {
    /// The request, or why it could not be parsed (answer that).
    pub request: std::result::Result<R, ControlError>,
    /// The span handling this request, a child of the caller's (a new trace without one).
    pub trace: TraceContext,
    /// The caller's context as it arrived (for a server that opens a span of its own).
    pub parent: Option<TraceContext>,
    pub subject: async_nats::Subject,
    reply: Option<async_nats::Subject>,
    nats: async_nats::Client,
}

impl<R> Incoming<R> {
    /// Wraps a received message, parsing its request with `parse`.
    pub fn new(
        nats: &async_nats::Client,
        msg: async_nats::Message,
        parse: impl FnOnce(&str, &[u8]) -> std::result::Result<R, ControlError>,
    ) -> Self {
        let parent = TraceContext::from_headers(msg.headers.as_ref());
        let trace = parent
            .map(|p| p.child())
            .unwrap_or_else(TraceContext::new_root);
        Self {
            request: parse(msg.subject.as_str(), &msg.payload),
            trace,
            parent,
            subject: msg.subject,
            reply: msg.reply,
            nats: nats.clone(),
        }
    }

    /// Whether the sender waits for an answer.
    pub fn wants_reply(&self) -> bool {
        self.reply.is_some()
    }

    /// Sends the answer (if the sender asked for one). Failing to send is logged: the
    /// requester will time out either way.
    pub async fn respond(&self, answer: Answer) {
        let Some(to) = self.reply.clone() else { return };
        if let Err(err) = self.nats.publish(to, encode(answer)).await {
            tracing::debug!(%err, subject = %self.subject, "cannot send a control reply");
        }
    }
}

/// Where a server listens: a subject, alone or in a queue group.
#[derive(Clone, Debug)]
pub struct Listen {
    pub subject: String,
    pub queue_group: Option<String>,
}

impl Listen {
    pub fn subject(subject: impl Into<String>) -> Self {
        Self {
            subject: subject.into(),
            queue_group: None,
        }
    }

    pub fn queue(subject: impl Into<String>, group: impl Into<String>) -> Self {
        Self {
            subject: subject.into(),
            queue_group: Some(group.into()),
        }
    }
}

/// The requests of `stream` until `shutdown`: a server's loop is then
/// `while let Some(request) = requests.next().await`.
pub fn until_cancelled<R: Send + 'static>(
    stream: BoxStream<'static, Incoming<R>>,
    shutdown: tokio_util::sync::CancellationToken,
) -> BoxStream<'static, Incoming<R>> {
    stream.take_until(shutdown.cancelled_owned()).boxed()
}

/// Control requests arriving on `listen`, parsed. Dropping the stream unsubscribes.
pub async fn control_requests(
    nats: &async_nats::Client,
    subjects: &Subjects,
    listen: impl IntoIterator<Item = Listen>,
) -> Result<BoxStream<'static, Incoming<ControlRequest>>> {
    let subs = subscribe(nats, listen).await?;
    let (nats, subjects) = (nats.clone(), subjects.clone());
    Ok(futures::stream::select_all(subs)
        .map(move |msg| {
            Incoming::new(&nats, msg, |subject, payload| {
                ControlRequest::parse(&subjects, subject, payload)
            })
        })
        .boxed())
}

/// Requests of one fixed type arriving on `listen` (health checks, say), parsed with `parse`.
pub async fn requests<R: Send + 'static>(
    nats: &async_nats::Client,
    listen: impl IntoIterator<Item = Listen>,
    parse: fn(&str, &[u8]) -> std::result::Result<R, ControlError>,
) -> Result<BoxStream<'static, Incoming<R>>> {
    let subs = subscribe(nats, listen).await?;
    let nats = nats.clone();
    Ok(futures::stream::select_all(subs)
        .map(move |msg| Incoming::new(&nats, msg, parse))
        .boxed())
}

async fn subscribe(
    nats: &async_nats::Client,
    listen: impl IntoIterator<Item = Listen>,
) -> Result<Vec<async_nats::Subscriber>> {
    let mut subs = Vec::new();
    for l in listen {
        let sub = match l.queue_group {
            Some(group) => nats.queue_subscribe(l.subject.clone(), group).await,
            None => nats.subscribe(l.subject.clone()).await,
        }
        .map_err(|e| Error::Nats(format!("subscribing {}: {e}", l.subject)))?;
        subs.push(sub);
    }
    Ok(subs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn replies_carry_data_or_a_kinded_error() {
        let ok = encode(answer(Ok::<_, ControlError>(vec![1, 2])));
        let v: serde_json::Value = serde_json::from_slice(&ok).unwrap();
        assert_eq!(v, serde_json::json!({"ok": true, "data": [1, 2]}));
        let err = encode(Err(ControlError::not_found("no link x")));
        let v: serde_json::Value = serde_json::from_slice(&err).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"ok": false, "error": "no link x", "kind": "not_found"})
        );
        let back = Reply::<serde_json::Value>::parse(&err)
            .unwrap()
            .into_result();
        match back {
            Err(Error::Control(c)) => assert_eq!(c.kind, ErrorKind::NotFound),
            other => panic!("{other:?}"),
        }
        // A server that predates kinds: the error is a refusal.
        let old = br#"{"ok":false,"error":"nope"}"#;
        match Reply::<serde_json::Value>::parse(old)
            .unwrap()
            .into_result()
        {
            Err(Error::Control(c)) => assert_eq!(c.kind, ErrorKind::Refused),
            other => panic!("{other:?}"),
        }
    }
}
