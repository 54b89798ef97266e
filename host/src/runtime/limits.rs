//! The limits of one instance and of the host: memory and tables (a `ResourceLimiter`), the
//! host's budget for all guest memory together, execution time (see [`super::instance`]), and
//! the host's rules for what a start may ask for.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use trellis_lattice::inventory::ComponentLimits;
use trellis_lattice::ControlError;
use wasmtime::ResourceLimiter;

pub use trellis_lattice::units::format_bytes;

/// A limit an invocation ran into. Raised from inside wasmtime and recognised again when the
/// invocation fails, so the caller is told which limit and what it was.
#[derive(Debug, Clone, Copy, thiserror::Error)]
pub enum LimitExceeded {
    #[error("memory limit of {} exceeded (tried to grow linear memory to {} bytes)", format_bytes(*limit), requested)]
    Memory { limit: u64, requested: u64 },
    #[error(
        "the host's memory budget of {} is in use by other instances ({} in use by {instances}; this instance asked for {} more)",
        format_bytes(*budget), format_bytes(*in_use), format_bytes(*requested)
    )]
    Budget {
        budget: u64,
        in_use: u64,
        instances: usize,
        requested: u64,
    },
    #[error("table limit of {limit} elements exceeded")]
    Table { limit: u64 },
    #[error("execution time limit of {} exceeded", humantime::format_duration(*limit))]
    Time { limit: Duration },
    #[error("interrupted: the component was stopped")]
    Stopped,
}

/// The memory all guest instances of a host may hold together. Each instance reserves what
/// its memories grow to and gives it back when its store is dropped.
#[derive(Debug)]
pub struct MemoryBudget {
    limit: u64,
    in_use: AtomicU64,
    instances: AtomicUsize,
}

impl MemoryBudget {
    pub fn new(limit: u64) -> Arc<Self> {
        Arc::new(Self {
            limit,
            in_use: AtomicU64::new(0),
            instances: AtomicUsize::new(0),
        })
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Bytes reserved by live instances now.
    pub fn in_use(&self) -> u64 {
        self.in_use.load(Ordering::Acquire)
    }

    fn reserve(&self, bytes: u64) -> Result<(), LimitExceeded> {
        let mut current = self.in_use.load(Ordering::Acquire);
        loop {
            let next = current.saturating_add(bytes);
            if next > self.limit {
                return Err(LimitExceeded::Budget {
                    budget: self.limit,
                    in_use: current,
                    instances: self.instances.load(Ordering::Acquire),
                    requested: bytes,
                });
            }
            match self.in_use.compare_exchange_weak(
                current,
                next,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(()),
                Err(actual) => current = actual,
            }
        }
    }

    fn release(&self, bytes: u64) {
        self.in_use.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// Caps on one instance's memories and tables, and its share of the host's budget.
pub struct Limiter {
    pub max_memory: u64,
    pub max_table_elements: u64,
    budget: Arc<MemoryBudget>,
    reserved: u64,
    /// Where the memory reached is published, when someone measures it.
    peak: Option<Arc<AtomicU64>>,
}

impl Limiter {
    /// The memory this instance reached, read after it ran (memories only grow).
    pub fn watch_peak(&mut self) -> Arc<AtomicU64> {
        let peak = Arc::new(AtomicU64::new(self.reserved));
        self.peak = Some(Arc::clone(&peak));
        peak
    }

    pub fn new(max_memory: u64, max_table_elements: u64, budget: Arc<MemoryBudget>) -> Self {
        budget.instances.fetch_add(1, Ordering::AcqRel);
        Self {
            max_memory,
            max_table_elements,
            budget,
            reserved: 0,
            peak: None,
        }
    }
}

impl Drop for Limiter {
    fn drop(&mut self) {
        self.budget.release(self.reserved);
        self.budget.instances.fetch_sub(1, Ordering::AcqRel);
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired as u64 > self.max_memory {
            return Err(wasmtime::Error::new(LimitExceeded::Memory {
                limit: self.max_memory,
                requested: desired as u64,
            }));
        }
        // Called with `current` 0 when a memory is created too, so the budget sees every byte.
        let more = (desired as u64).saturating_sub(current as u64);
        self.budget.reserve(more).map_err(wasmtime::Error::new)?;
        self.reserved += more;
        if let Some(peak) = &self.peak {
            peak.store(self.reserved, Ordering::Relaxed);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired as u64 > self.max_table_elements {
            return Err(wasmtime::Error::new(LimitExceeded::Table {
                limit: self.max_table_elements,
            }));
        }
        Ok(true)
    }
}

/// What a host allows a start to ask for.
#[derive(Clone, Copy, Debug)]
pub struct HostLimits {
    /// Limits of a start that asks for none.
    pub defaults: ComponentLimits,
    /// The largest memory cap a start may ask for.
    pub memory_ceiling: u64,
    /// The longest execution time limit a start may ask for.
    pub time_ceiling: Duration,
    /// All guest memory of the host together.
    pub memory_budget: u64,
}

impl HostLimits {
    /// The limits of a start: the defaults with its overrides, checked against the ceilings.
    pub fn for_start(
        &self,
        max_memory_bytes: Option<u64>,
        timeout_ms: Option<u64>,
    ) -> Result<ComponentLimits, ControlError> {
        let limits = ComponentLimits {
            max_memory_bytes: max_memory_bytes.unwrap_or(self.defaults.max_memory_bytes),
            timeout_ms: timeout_ms.unwrap_or(self.defaults.timeout_ms),
        };
        if limits.max_memory_bytes > self.memory_ceiling {
            return Err(ControlError::invalid(format!(
                "memory limit {} is above this host's ceiling of {} (start the host with a larger --memory-ceiling)",
                format_bytes(limits.max_memory_bytes),
                format_bytes(self.memory_ceiling)
            )));
        }
        if limits.max_memory_bytes > self.memory_budget {
            return Err(ControlError::refused(format!(
                "memory limit {} per instance does not fit in this host's memory budget of {} for all instances together (--memory-budget)",
                format_bytes(limits.max_memory_bytes),
                format_bytes(self.memory_budget)
            )));
        }
        if limits.max_memory_bytes < 64 << 10 {
            return Err(ControlError::invalid(
                "memory limit must be at least 64 KiB (one wasm page)",
            ));
        }
        if limits.timeout_ms == 0 {
            return Err(ControlError::invalid(
                "execution time limit must be positive",
            ));
        }
        let ceiling = self.time_ceiling.as_millis().min(u64::MAX as u128) as u64;
        if limits.timeout_ms > ceiling {
            return Err(ControlError::invalid(format!(
                "execution time limit {} is above this host's ceiling of {} (--max-execution-time-ceiling)",
                humantime::format_duration(Duration::from_millis(limits.timeout_ms)),
                humantime::format_duration(self.time_ceiling)
            )));
        }
        Ok(limits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> HostLimits {
        HostLimits {
            defaults: ComponentLimits {
                max_memory_bytes: 64 << 20,
                timeout_ms: 10_000,
            },
            memory_ceiling: 1 << 30,
            time_ceiling: Duration::from_secs(600),
            memory_budget: 512 << 20,
        }
    }

    #[test]
    fn overrides_are_checked_against_the_ceilings_and_the_budget() {
        let l = host().for_start(None, Some(500)).unwrap();
        assert_eq!((l.max_memory_bytes, l.timeout_ms), (64 << 20, 500));
        let err = host().for_start(Some(2 << 30), None).unwrap_err();
        assert!(err.message.contains("above this host's ceiling"), "{err}");
        assert_eq!(err.kind, trellis_lattice::ErrorKind::Invalid);
        let err = host().for_start(Some(1 << 30), None).unwrap_err();
        assert!(err.message.contains("memory budget of 512 MiB"), "{err}");
        assert_eq!(err.kind, trellis_lattice::ErrorKind::Refused);
        assert!(host().for_start(Some(1024), None).is_err());
        assert!(host().for_start(None, Some(0)).is_err());
        let err = host().for_start(None, Some(u64::MAX)).unwrap_err();
        assert!(
            err.message.contains("above this host's ceiling of 10m"),
            "{err}"
        );
    }

    #[test]
    fn the_budget_is_shared_and_given_back() {
        let budget = MemoryBudget::new(10 << 20);
        let mut a = Limiter::new(8 << 20, 10, Arc::clone(&budget));
        let mut b = Limiter::new(8 << 20, 10, Arc::clone(&budget));
        assert!(a.memory_growing(0, 6 << 20, None).unwrap());
        let err = b.memory_growing(0, 6 << 20, None).unwrap_err();
        let limit = err.downcast_ref::<LimitExceeded>().copied();
        assert!(
            matches!(limit, Some(LimitExceeded::Budget { instances: 2, .. })),
            "{err}"
        );
        assert!(b.memory_growing(0, 4 << 20, None).unwrap());
        assert_eq!(budget.in_use(), 10 << 20);
        drop(a);
        assert_eq!(budget.in_use(), 4 << 20);
        assert!(b.memory_growing(4 << 20, 8 << 20, None).unwrap());
        drop(b);
        assert_eq!(budget.in_use(), 0);
    }
}
