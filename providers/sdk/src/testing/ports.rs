//! Free loopback ports for servers the tests start, chosen so that they stay free.
//!
//! Asking the kernel for port 0 and closing the socket hands out a port from the ephemeral
//! range, which the kernel then gives to the next outgoing connection of any test running in
//! parallel (a client connecting to NATS, say) before the server we meant it for binds it.
//! Ports here come from below that range, and each is held under a lock file for the life of
//! the test process, so two test processes never pick the same one.

use std::fs::{File, OpenOptions};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// Below the lowest port the kernel hands out by default and above well-known services.
const LOW: u16 = 20_000;
const FALLBACK_EPHEMERAL_START: u16 = 32_768;

/// Locks of the ports this process took; released when it exits.
static HELD: Mutex<Vec<File>> = Mutex::new(Vec::new());
static DRAWS: AtomicU64 = AtomicU64::new(0);

/// A TCP port on 127.0.0.1 that nothing listens on, that no outgoing connection will be given
/// meanwhile, and that no other test process holds.
pub fn free_port() -> u16 {
    let high = ephemeral_start().max(LOW + 1_000);
    let span = u64::from(high - LOW);
    let dir = lock_dir();
    for _ in 0..2_000 {
        let port = LOW + (next_random() % span) as u16;
        let Some(lock) = try_reserve(&dir, port) else {
            continue;
        };
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            HELD.lock().unwrap_or_else(|e| e.into_inner()).push(lock);
            return port;
        }
    }
    panic!("no free port between {LOW} and {high} after 2000 tries");
}

fn try_reserve(dir: &std::path::Path, port: u16) -> Option<File> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(format!("{port}.lock")))
        .ok()?;
    file.try_lock().ok()?;
    Some(file)
}

fn lock_dir() -> PathBuf {
    let dir = std::env::temp_dir().join("trellis-test-ports");
    std::fs::create_dir_all(&dir).expect("creating the test port lock directory");
    dir
}

/// The first port of the kernel's ephemeral range (`ip_local_port_range`).
fn ephemeral_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(FALLBACK_EPHEMERAL_START)
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
    // splitmix64 finaliser
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}
