//! The limits of one instance: memory and tables (a `ResourceLimiter`), execution time (see
//! [`super::instance`]), and the host's rules for what a start may ask for.

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
    #[error("table limit of {limit} elements exceeded")]
    Table { limit: u64 },
    #[error("execution time limit of {} exceeded", humantime::format_duration(*limit))]
    Time { limit: Duration },
}

/// Caps on one instance's memories and tables.
pub struct Limiter {
    pub max_memory: u64,
    pub max_table_elements: u64,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired as u64 > self.max_memory {
            return Err(wasmtime::Error::new(LimitExceeded::Memory {
                limit: self.max_memory,
                requested: desired as u64,
            }));
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

/// The default limits of a host, with per-start overrides applied and checked.
pub fn limits(
    defaults: &ComponentLimits,
    memory_ceiling: u64,
    max_memory_bytes: Option<u64>,
    timeout_ms: Option<u64>,
) -> Result<ComponentLimits, ControlError> {
    let limits = ComponentLimits {
        max_memory_bytes: max_memory_bytes.unwrap_or(defaults.max_memory_bytes),
        timeout_ms: timeout_ms.unwrap_or(defaults.timeout_ms),
    };
    if limits.max_memory_bytes > memory_ceiling {
        return Err(ControlError::invalid(format!(
            "memory limit {} is above this host's ceiling of {} (start the host with a larger --memory-ceiling)",
            format_bytes(limits.max_memory_bytes),
            format_bytes(memory_ceiling)
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
    Ok(limits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_are_checked_against_the_ceiling() {
        let defaults = ComponentLimits {
            max_memory_bytes: 64 << 20,
            timeout_ms: 10_000,
        };
        let l = limits(&defaults, 1 << 30, None, Some(500)).unwrap();
        assert_eq!((l.max_memory_bytes, l.timeout_ms), (64 << 20, 500));
        let err = limits(&defaults, 1 << 30, Some(2 << 30), None).unwrap_err();
        assert!(err.message.contains("above this host's ceiling"), "{err}");
        assert_eq!(err.kind, trellis_lattice::ErrorKind::Invalid);
        assert!(limits(&defaults, 1 << 30, Some(1024), None).is_err());
        assert!(limits(&defaults, 1 << 30, None, Some(0)).is_err());
    }
}
