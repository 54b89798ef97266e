//! The types every backend shares: line settings, edges, chip and line descriptions,
//! errors, and the backend traits.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;

/// Lines a chip may have at most (what the lattice protocol lets a request name).
pub use trellis_lattice::gpio::MAX_LINES;
/// Edge events a watcher may fall behind by before the oldest are lost (and counted).
pub const EVENT_BUFFER: usize = 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Input,
    Output,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bias {
    PullUp,
    PullDown,
}

/// How a line is requested.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineSettings {
    pub direction: Direction,
    pub active_low: bool,
    pub bias: Option<Bias>,
    /// Report rising and falling edges (inputs only).
    pub edges: bool,
    pub debounce: Option<Duration>,
    /// The logical value an output starts with.
    pub initial: bool,
}

impl LineSettings {
    pub fn input() -> Self {
        Self {
            direction: Direction::Input,
            active_low: false,
            bias: None,
            edges: false,
            debounce: None,
            initial: false,
        }
    }

    pub fn output(initial: bool) -> Self {
        Self {
            direction: Direction::Output,
            initial,
            ..Self::input()
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Edge {
    /// Inactive to active.
    Rising,
    /// Active to inactive.
    Falling,
}

/// One edge on a watched line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EdgeEvent {
    pub chip: Arc<str>,
    pub line: u32,
    pub edge: Edge,
    /// `CLOCK_MONOTONIC`, nanoseconds: the kernel's own stamp on a real chip.
    pub timestamp_ns: u64,
}

/// What a chip says about itself and its lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChipInfo {
    pub name: String,
    pub label: String,
    pub simulated: bool,
    pub lines: Vec<LineInfo>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineInfo {
    pub offset: u32,
    pub name: String,
    pub direction: Direction,
    /// Physical level, where it can be read without disturbing the line.
    pub value: Option<bool>,
    /// Who holds it: a component of this host, or another process's consumer name.
    pub used_by: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GpioError {
    #[error("no GPIO chip `{0}` on this host")]
    NoSuchChip(String),
    #[error("chip `{chip}` has no line {line}")]
    NoSuchLine { chip: String, line: u32 },
    #[error("line {chip}:{line} is in use by {by}")]
    InUse { chip: String, line: u32, by: String },
    #[error("line {chip}:{line} is not {what}")]
    WrongDirection {
        chip: String,
        line: u32,
        what: &'static str,
    },
    #[error("{0}")]
    Unsupported(String),
    #[error("the chip or its driver failed: {0}")]
    Hardware(String),
    #[error("the line was released (its chip went away or its grant changed)")]
    Released,
}

/// A requested line, held by one component until released.
pub trait LineHandle: Send + Sync {
    /// The logical value (active-low applied).
    fn get(&self) -> Result<bool, GpioError>;
    fn set(&self, active: bool) -> Result<(), GpioError>;
    fn reconfigure(&self, settings: &LineSettings) -> Result<(), GpioError>;
    /// PWM duty cycle, 0.0 to 1.0 (simulated chips only: the character device has no PWM).
    fn set_duty(&self, duty: f32) -> Result<(), GpioError>;
    /// Edge events, when requested with `edges`.
    fn events(&self) -> broadcast::Receiver<EdgeEvent>;
}

/// A chip.
pub trait Backend: Send + Sync {
    fn info(&self) -> Result<ChipInfo, GpioError>;
    fn request(
        &self,
        line: u32,
        settings: &LineSettings,
        consumer: &str,
    ) -> Result<Arc<dyn LineHandle>, GpioError>;
    /// Drives a simulated input to a physical level.
    fn drive(&self, line: u32, high: bool) -> Result<(), GpioError>;
    /// The physical level of a line nobody on this host holds.
    fn level(&self, line: u32) -> Result<bool, GpioError>;
    fn simulated(&self) -> bool;
}

/// `CLOCK_MONOTONIC` now, in nanoseconds (the clock the kernel stamps edges with).
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec it is given and nothing else.
    unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Chip names: letters, digits, `-`, `_`, at most 32 (the lattice protocol's rule).
pub fn validate_chip_name(name: &str) -> Result<(), String> {
    trellis_lattice::gpio::validate_chip_name(name).map_err(|e| e.to_string())
}
