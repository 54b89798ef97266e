//! Reconnection back-off: doubling from 100 ms to 5 s, reset by a successful connection.

use std::time::Duration;

const FIRST: Duration = Duration::from_millis(100);
const MAX: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub struct Backoff(Duration);

impl Default for Backoff {
    fn default() -> Self {
        Self(FIRST)
    }
}

impl Backoff {
    pub fn pause(&mut self) -> Duration {
        let now = self.0;
        self.0 = (self.0 * 2).min(MAX);
        now
    }

    pub fn reset(&mut self) {
        self.0 = FIRST;
    }
}
