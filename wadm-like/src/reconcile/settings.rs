//! How a manager is timed.

use std::time::Duration;

use crate::lease::LeaseTiming;

/// Timing of a manager.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// How often the whole lattice is read again (inventories, links, config).
    pub full_pass: Duration,
    pub lease: LeaseTiming,
    /// Commands in flight at once, over all apps.
    pub max_commands: usize,
    /// The longest a new leader listens to heartbeats before it acts.
    pub max_warmup: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            full_pass: Duration::from_secs(10),
            lease: LeaseTiming::default(),
            max_commands: 32,
            max_warmup: Duration::from_secs(10),
        }
    }
}
