//! Live per-component figures a host keeps and answers on `host.stats` (what `trellis top`
//! shows): counters since the component started, a duration histogram with fixed bucket
//! bounds (so a client computes rates and quantiles from two samples), the largest memory
//! an instance reached and CPU time measured on a sample of invocations.

use serde::{Deserialize, Serialize};

/// Upper bounds of the duration buckets, in microseconds: half-octaves from 1 µs to about
/// 1.7 hours (the last bucket holds everything longer).
pub fn bucket_bounds_us() -> &'static [u64] {
    static BOUNDS: std::sync::OnceLock<Vec<u64>> = std::sync::OnceLock::new();
    BOUNDS.get_or_init(|| {
        (0..66)
            .map(|k| {
                let v = 2f64.powf(k as f64 / 2.0);
                v.round() as u64
            })
            .collect::<Vec<u64>>()
            .into_iter()
            .fold(Vec::new(), |mut acc, v| {
                if acc.last() != Some(&v) {
                    acc.push(v);
                }
                acc
            })
    })
}

/// The bucket a duration of `us` microseconds falls in.
pub fn bucket_of(us: u64) -> usize {
    let bounds = bucket_bounds_us();
    bounds.partition_point(|b| *b < us).min(bounds.len() - 1)
}

/// One component on one host.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ComponentStats {
    pub component_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    pub invocations: u64,
    pub errors: u64,
    /// Instances running an invocation now, and the most that may (replicas).
    pub active: u32,
    pub max: u32,
    /// Non-empty duration buckets as `(bucket index, count)` (see [`bucket_bounds_us`]).
    pub durations: Vec<(u32, u64)>,
    /// The largest linear memory an instance reached, in bytes.
    pub memory_peak_bytes: u64,
    /// CPU time of the sampled invocations, and how many were sampled.
    pub cpu_ns: u64,
    pub cpu_sampled: u64,
}

/// A host's answer to `host.stats`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HostStats {
    pub host_id: String,
    pub friendly_name: String,
    /// Milliseconds since the host started, when the figures were read.
    pub uptime_ms: u64,
    pub components: Vec<ComponentStats>,
}

/// The durations counted between two samples, as dense bucket counts.
pub fn delta(now: &[(u32, u64)], before: Option<&[(u32, u64)]>) -> Vec<u64> {
    let mut counts = vec![0u64; bucket_bounds_us().len()];
    for (i, n) in now {
        if let Some(c) = counts.get_mut(*i as usize) {
            *c += n;
        }
    }
    for (i, n) in before.unwrap_or(&[]) {
        if let Some(c) = counts.get_mut(*i as usize) {
            *c = c.saturating_sub(*n);
        }
    }
    counts
}

/// The `q` quantile (0..=1) of dense bucket counts, as the upper bound of its bucket in
/// microseconds; `None` without data.
pub fn quantile_us(counts: &[u64], q: f64) -> Option<u64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
    let mut seen = 0;
    for (i, n) in counts.iter().enumerate() {
        seen += n;
        if seen >= rank {
            return bucket_bounds_us().get(i).copied();
        }
    }
    bucket_bounds_us().last().copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_increasing_half_octaves() {
        let b = bucket_bounds_us();
        assert_eq!(&b[..6], &[1, 2, 3, 4, 6, 8]);
        assert!(b.windows(2).all(|w| w[0] < w[1]));
        assert!(*b.last().unwrap() > 3_600_000_000);
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(5), 4);
        assert_eq!(bucket_of(u64::MAX), b.len() - 1);
    }

    #[test]
    fn quantiles_from_deltas() {
        let before = vec![(bucket_of(100) as u32, 10)];
        let now = vec![(bucket_of(100) as u32, 108), (bucket_of(10_000) as u32, 2)];
        let d = delta(&now, Some(&before));
        assert_eq!(d.iter().sum::<u64>(), 100);
        assert_eq!(
            quantile_us(&d, 0.5),
            Some(bucket_bounds_us()[bucket_of(100)])
        );
        assert_eq!(
            quantile_us(&d, 0.99),
            Some(bucket_bounds_us()[bucket_of(10_000)])
        );
        assert_eq!(quantile_us(&[0, 0], 0.5), None);
    }
}
