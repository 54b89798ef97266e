//! Forwarded messages a subscription took (an outbox's forwarder names each with
//! `Trellis-Msg-Id` and sends it again until it is answered): answered only once the
//! component handled it, a repeat of an answered one answered again without a second
//! delivery, a repeat of one still being delivered left unanswered (the sender tries again
//! later), and one dropped before it was handled forgotten (so its repeat is delivered).

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};

/// Ids longer than this are not taken as forwarded messages (a hostile sender's headers
/// could otherwise fill the memory kept for repeats).
pub const MAX_ID_LEN: usize = 256;

#[derive(Default)]
struct State {
    in_flight: HashSet<String>,
    done: HashSet<String>,
    order: VecDeque<String>,
}

/// What one subscription remembers.
#[derive(Clone, Default)]
pub struct Receipts {
    state: Arc<Mutex<State>>,
}

/// What to do with a forwarded message.
pub enum Seen {
    /// First time: deliver it, holding the receipt until it is answered.
    New(Receipt),
    /// Still being delivered: say nothing.
    InFlight,
    /// Handled already: answer again, deliver nothing.
    Done,
}

impl Receipts {
    /// Ids of answered messages remembered.
    const KEEP: usize = 4096;

    pub fn check(&self, id: &str) -> Seen {
        let Ok(mut s) = self.state.lock() else {
            return Seen::InFlight;
        };
        if s.done.contains(id) {
            return Seen::Done;
        }
        if !s.in_flight.insert(id.to_string()) {
            return Seen::InFlight;
        }
        Seen::New(Receipt {
            receipts: self.clone(),
            id: id.to_string(),
            answered: false,
        })
    }
}

/// Held while a forwarded message is delivered.
pub struct Receipt {
    receipts: Receipts,
    id: String,
    answered: bool,
}

impl Receipt {
    /// The component handled it (and the answer goes out): repeats are answered from now on.
    pub fn done(mut self) {
        self.answered = true;
        let Ok(mut s) = self.receipts.state.lock() else {
            return;
        };
        s.in_flight.remove(&self.id);
        if s.order.len() >= Receipts::KEEP {
            if let Some(old) = s.order.pop_front() {
                s.done.remove(&old);
            }
        }
        s.done.insert(self.id.clone());
        s.order.push_back(self.id.clone());
    }
}

impl Drop for Receipt {
    fn drop(&mut self) {
        // Dropped unanswered (queue full, link gone): the sender sends it again.
        if !self.answered {
            if let Ok(mut s) = self.receipts.state.lock() {
                s.in_flight.remove(&self.id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeat_is_delivered_once_and_answered_only_once_handled() {
        let r = Receipts::default();
        let Seen::New(first) = r.check("a") else {
            panic!("new")
        };
        assert!(
            matches!(r.check("a"), Seen::InFlight),
            "not answered while in flight"
        );
        first.done();
        assert!(matches!(r.check("a"), Seen::Done));
        // Dropped before it was handled: the repeat is delivered.
        let Seen::New(dropped) = r.check("b") else {
            panic!("new")
        };
        drop(dropped);
        assert!(matches!(r.check("b"), Seen::New(_)));
    }
}
