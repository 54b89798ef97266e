//! The caller's side of error reports: one subscription per [`super::Invoker`].
//!
//! No task sits between the subscription and the calls. A callee publishes its report
//! before it closes the result stream, both from one connection, so when a caller sees the
//! results end, the report (if any) is already queued on this subscription: draining it
//! right then finds it without waiting.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::task::{Context, Poll};

use futures::StreamExt as _;

use super::ErrorReport;

pub(crate) struct ErrorInbox {
    prefix: String,
    state: Mutex<State>,
}

struct State {
    sub: async_nats::Subscriber,
    /// Calls waiting for a possible report.
    pending: HashSet<String>,
    /// Reports that arrived for pending calls.
    arrived: HashMap<String, ErrorReport>,
}

impl State {
    fn drain(&mut self) {
        let mut cx = Context::from_waker(futures::task::noop_waker_ref());
        while let Poll::Ready(Some(msg)) = self.sub.poll_next_unpin(&mut cx) {
            match serde_json::from_slice::<ErrorReport>(&msg.payload) {
                Ok(report) if self.pending.contains(&report.call_id) => {
                    self.arrived.insert(report.call_id.clone(), report);
                }
                Ok(_) => {}
                Err(err) => {
                    tracing::debug!(%err, subject = %msg.subject, "ignoring malformed error report")
                }
            }
        }
    }
}

/// A call's claim on its error report.
pub(crate) struct Registration {
    pub call_id: String,
    pub subject: String,
}

impl ErrorInbox {
    pub(crate) async fn new(nats: &async_nats::Client) -> Result<Self, async_nats::SubscribeError> {
        let prefix = format!("{}.err", nats.new_inbox());
        let sub = nats.subscribe(format!("{prefix}.*")).await?;
        Ok(Self {
            prefix,
            state: Mutex::new(State {
                sub,
                pending: HashSet::new(),
                arrived: HashMap::new(),
            }),
        })
    }

    pub(crate) fn register(&self) -> Registration {
        let call_id = uuid::Uuid::new_v4().simple().to_string();
        if let Ok(mut state) = self.state.lock() {
            state.drain();
            state.pending.insert(call_id.clone());
        }
        Registration {
            subject: format!("{}.{call_id}", self.prefix),
            call_id,
        }
    }

    /// The report for `call_id`, if one has arrived.
    pub(crate) fn take(&self, call_id: &str) -> Option<ErrorReport> {
        let mut state = self.state.lock().ok()?;
        state.drain();
        state.arrived.remove(call_id)
    }

    /// Forgets a finished call.
    pub(crate) fn forget(&self, call_id: &str) {
        if let Ok(mut state) = self.state.lock() {
            state.pending.remove(call_id);
            state.arrived.remove(call_id);
        }
    }
}
