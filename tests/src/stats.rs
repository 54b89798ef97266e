//! Small statistics for bench binaries: samples in, medians and percentiles out.

use std::time::Duration;

/// Durations of repeated runs of one thing.
#[derive(Default, Clone)]
pub struct Samples(Vec<Duration>);

impl Samples {
    pub fn push(&mut self, d: Duration) {
        self.0.push(d);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The `p`-th percentile (0.0–1.0), nearest rank.
    pub fn percentile(&self, p: f64) -> Duration {
        let mut v = self.0.clone();
        v.sort();
        if v.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len());
        v[rank - 1]
    }

    pub fn median(&self) -> Duration {
        self.percentile(0.5)
    }

    pub fn min(&self) -> Duration {
        self.0.iter().copied().min().unwrap_or_default()
    }

    pub fn max(&self) -> Duration {
        self.0.iter().copied().max().unwrap_or_default()
    }
}

/// `12.3 µs`, `4.56 ms`.
pub fn fmt(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{us:.1} µs")
    } else {
        format!("{:.2} ms", us / 1000.0)
    }
}

/// One result line: `name  p50 (min–max)  p99`.
pub fn report(name: &str, s: &Samples) {
    println!(
        "{name:<48} p50 {:>10}  p99 {:>10}  (min {}, max {}, n={})",
        fmt(s.median()),
        fmt(s.percentile(0.99)),
        fmt(s.min()),
        fmt(s.max()),
        s.len()
    );
}
