//! How often one component's failures are written to the host log: a component that traps a
//! thousand times a second must not grow the log a thousand records a second. Its figures
//! (`host.stats`, metrics) still count every failure; the log keeps a few per second and
//! says how many it left out.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures logged per component per window.
pub const LOGGED_PER_WINDOW: u32 = 10;
const WINDOW: Duration = Duration::from_secs(1);

/// Counts the records of one window.
pub struct LogThrottle {
    state: Mutex<Window>,
}

struct Window {
    started: Instant,
    logged: u32,
    /// Left out since the last record that was logged.
    suppressed: u64,
}

impl Default for LogThrottle {
    fn default() -> Self {
        Self {
            state: Mutex::new(Window {
                started: Instant::now(),
                logged: 0,
                suppressed: 0,
            }),
        }
    }
}

impl LogThrottle {
    /// Whether a record may be logged now: `Some(n)` with the number left out before it,
    /// `None` when this one is left out too.
    pub fn admit(&self) -> Option<u64> {
        self.admit_at(Instant::now())
    }

    fn admit_at(&self, now: Instant) -> Option<u64> {
        let mut w = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if now.duration_since(w.started) >= WINDOW {
            w.started = now;
            w.logged = 0;
        }
        if w.logged >= LOGGED_PER_WINDOW {
            w.suppressed += 1;
            return None;
        }
        w.logged += 1;
        Some(std::mem::take(&mut w.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_few_per_window_and_the_rest_counted() {
        let t = LogThrottle::default();
        let start = Instant::now();
        let admitted = (0..1000).filter(|_| t.admit_at(start).is_some()).count();
        assert_eq!(admitted, LOGGED_PER_WINDOW as usize);
        // The next window's first record says how many were left out.
        assert_eq!(
            t.admit_at(start + WINDOW),
            Some(1000 - u64::from(LOGGED_PER_WINDOW))
        );
        assert_eq!(t.admit_at(start + WINDOW), Some(0));
    }
}
