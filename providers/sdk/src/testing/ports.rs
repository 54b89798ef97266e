//! Free loopback ports for servers the tests start, chosen so that they stay free.
//!
//! Asking the kernel for port 0 and closing the socket hands out a port from the ephemeral
//! range, which the kernel then gives to the next outgoing connection of any test running in
//! parallel (a client connecting to NATS, say) before the server we meant it for binds it.
//! Ports here come from outside that range, and each is held under a lock file for the life
//! of the test process, so two test processes never pick the same one.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// Ports below this are left to well-known services.
const LOWEST: u16 = 20_000;
/// The kernel's default ephemeral range, if it cannot be read.
const DEFAULT_EPHEMERAL: (u16, u16) = (32_768, 60_999);
/// Fewer ports than this outside the ephemeral range, and collisions become likely.
const ENOUGH: u16 = 2_000;

/// Locks of the ports this process took; released when it exits.
static HELD: Mutex<Vec<File>> = Mutex::new(Vec::new());
static DRAWS: AtomicU64 = AtomicU64::new(0);

/// A TCP port on 127.0.0.1 that nothing listens on, that no outgoing connection will be given
/// meanwhile, and that no other test process holds.
pub fn free_port() -> u16 {
    let (low, high) = outside_ephemeral(ephemeral_range());
    let span = u64::from(high - low) + 1;
    let dir = lock_dir();
    for _ in 0..2_000 {
        let port = low + (next_random() % span) as u16;
        let Some(lock) = try_reserve(&dir, port) else {
            continue;
        };
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            HELD.lock().unwrap_or_else(|e| e.into_inner()).push(lock);
            return port;
        }
    }
    panic!(
        "no free port between {low} and {high} after 2000 tries (locks in {})",
        dir.display()
    );
}

/// The larger of the ranges below and above the ephemeral one (both inclusive).
fn outside_ephemeral((start, end): (u16, u16)) -> (u16, u16) {
    let below = (LOWEST, start.saturating_sub(1));
    let above = (end.saturating_add(1).max(LOWEST), u16::MAX);
    let size = |(lo, hi): (u16, u16)| hi.saturating_sub(lo);
    let best = if size(below) >= size(above) {
        below
    } else {
        above
    };
    assert!(
        size(best) >= ENOUGH,
        "the ephemeral port range {start}-{end} leaves too few ports for test servers"
    );
    best
}

fn try_reserve(dir: &Path, port: u16) -> Option<File> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(format!("{port}.lock")))
        .ok()?;
    // SAFETY: flock on a descriptor this function owns; no memory is involved.
    let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
    locked.then_some(file)
}

/// One directory per user, so another user's lock files never stand in the way.
fn lock_dir() -> PathBuf {
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    let dir = std::env::temp_dir().join(format!("trellis-test-ports-{uid}"));
    std::fs::create_dir_all(&dir).expect("creating the test port lock directory");
    dir
}

/// The kernel's ephemeral range (`ip_local_port_range`).
fn ephemeral_range() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut bounds = s.split_whitespace().map(|b| b.parse().ok());
            Some((bounds.next()??, bounds.next()??))
        })
        .unwrap_or(DEFAULT_EPHEMERAL)
}

/// Spread over processes and calls; quality does not matter, only that two processes started
/// together draw different sequences.
fn next_random() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut x = nanos
        ^ u64::from(std::process::id()).rotate_left(32)
        ^ DRAWS
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    // splitmix64's finaliser
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_come_from_outside_the_ephemeral_range() {
        assert_eq!(outside_ephemeral((32_768, 60_999)), (20_000, 32_767));
        // A range starting low leaves the ports above it.
        assert_eq!(outside_ephemeral((15_000, 40_000)), (40_001, 65_535));
        let (low, high) = outside_ephemeral(ephemeral_range());
        let port = free_port();
        assert!((low..=high).contains(&port));
        assert_ne!(free_port(), port, "a port stays held by this process");
    }
}
