//! A running component's live figures for `host.stats` (`trellis top`): a few atomic
//! counters and a fixed-bucket duration histogram, updated once per invocation whether or
//! not anything is exported.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use trellis_lattice::stats::{bucket_bounds_us, bucket_of, ComponentStats};

/// One invocation in this many has its CPU time measured (reading the thread's CPU clock
/// around every poll costs a system call each).
pub const CPU_SAMPLE_EVERY: u64 = 16;

pub struct Stats {
    invocations: AtomicU64,
    errors: AtomicU64,
    buckets: Box<[AtomicU64]>,
    memory_peak: AtomicU64,
    cpu_ns: AtomicU64,
    cpu_sampled: AtomicU64,
    started: AtomicU64,
    /// How many of its failures reach the host log.
    pub failure_log: super::throttle::LogThrottle,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            invocations: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            buckets: bucket_bounds_us()
                .iter()
                .map(|_| AtomicU64::new(0))
                .collect(),
            memory_peak: AtomicU64::new(0),
            cpu_ns: AtomicU64::new(0),
            cpu_sampled: AtomicU64::new(0),
            started: AtomicU64::new(0),
            failure_log: Default::default(),
        }
    }
}

impl Stats {
    /// Whether the invocation starting now should have its CPU time measured.
    pub fn sample_cpu(&self) -> bool {
        self.started.fetch_add(1, Ordering::Relaxed) % CPU_SAMPLE_EVERY == 0
    }

    pub fn record(&self, ran: Duration, memory_peak: u64, failed: bool, cpu: Option<Duration>) {
        self.invocations.fetch_add(1, Ordering::Relaxed);
        if failed {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        let us = u64::try_from(ran.as_micros()).unwrap_or(u64::MAX);
        self.buckets[bucket_of(us)].fetch_add(1, Ordering::Relaxed);
        self.memory_peak.fetch_max(memory_peak, Ordering::Relaxed);
        if let Some(cpu) = cpu {
            let ns = u64::try_from(cpu.as_nanos()).unwrap_or(u64::MAX);
            self.cpu_ns.fetch_add(ns, Ordering::Relaxed);
            self.cpu_sampled.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn snapshot(
        &self,
        component_id: &str,
        app: Option<String>,
        active: u32,
        max: u32,
    ) -> ComponentStats {
        ComponentStats {
            component_id: component_id.to_string(),
            app,
            invocations: self.invocations.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            active,
            max,
            durations: self
                .buckets
                .iter()
                .enumerate()
                .filter_map(|(i, n)| {
                    let n = n.load(Ordering::Relaxed);
                    (n > 0).then_some((i as u32, n))
                })
                .collect(),
            memory_peak_bytes: self.memory_peak.load(Ordering::Relaxed),
            cpu_ns: self.cpu_ns.load(Ordering::Relaxed),
            cpu_sampled: self.cpu_sampled.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_samples() {
        let s = Stats::default();
        let sampled = (0..32).filter(|_| s.sample_cpu()).count();
        assert_eq!(sampled, 2);
        s.record(
            Duration::from_micros(100),
            1 << 20,
            false,
            Some(Duration::from_micros(40)),
        );
        s.record(Duration::from_millis(5), 2 << 20, true, None);
        let snap = s.snapshot("c", None, 1, 4);
        assert_eq!(
            (snap.invocations, snap.errors, snap.active, snap.max),
            (2, 1, 1, 4)
        );
        assert_eq!(snap.durations.iter().map(|(_, n)| n).sum::<u64>(), 2);
        assert_eq!(snap.memory_peak_bytes, 2 << 20);
        assert_eq!((snap.cpu_ns, snap.cpu_sampled), (40_000, 1));
    }
}
