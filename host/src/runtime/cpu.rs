//! CPU time of one invocation: the calling thread's CPU clock read around every poll of
//! its future (an invocation may move between threads between polls, never during one).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec we own.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0;
    }
    (ts.tv_sec as u64).saturating_mul(1_000_000_000) + ts.tv_nsec as u64
}

/// Adds the CPU time spent polling `inner` to `total`.
pub struct CpuTimed<F> {
    inner: Pin<Box<F>>,
    total: Arc<AtomicU64>,
}

impl<F> CpuTimed<F> {
    pub fn new(inner: F, total: Arc<AtomicU64>) -> Self {
        Self {
            inner: Box::pin(inner),
            total,
        }
    }
}

impl<F: Future> Future for CpuTimed<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let start = thread_cpu_ns();
        let out = self.inner.as_mut().poll(cx);
        let spent = thread_cpu_ns().saturating_sub(start);
        self.total.fetch_add(spent, Ordering::Relaxed);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn measures_busy_polls() {
        let total = Arc::new(AtomicU64::new(0));
        CpuTimed::new(
            async {
                let mut x = 0u64;
                for i in 0..2_000_000u64 {
                    x = x.wrapping_add(i * i);
                }
                std::hint::black_box(x);
            },
            Arc::clone(&total),
        )
        .await;
        assert!(total.load(Ordering::Relaxed) > 0);
    }
}
