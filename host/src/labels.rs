//! The labels a host carries: built-in facts about the machine plus the user's.

use trellis_lattice::labels::{self, Labels};

/// Facts detected from the machine, under the reserved `trellis.` prefix.
pub fn builtin() -> Labels {
    let mut l = Labels::new();
    l.insert(labels::ARCH.into(), std::env::consts::ARCH.into());
    l.insert(labels::OS.into(), std::env::consts::OS.into());
    l.insert(labels::HOSTNAME.into(), hostname());
    l.insert(
        labels::CPUS.into(),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .to_string(),
    );
    if let Some(mb) = memory_mb() {
        l.insert(labels::MEMORY_MB.into(), mb.to_string());
    }
    if has_gpio() {
        l.insert("trellis.gpio".into(), "true".into());
    }
    l
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

fn memory_mb() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

fn has_gpio() -> bool {
    std::fs::read_dir("/dev")
        .map(|d| {
            d.flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("gpiochip"))
        })
        .unwrap_or(false)
}

/// Built-in labels with the user's on top; a user label may not use a built-in key.
pub fn merge(user: &Labels) -> Result<Labels, trellis_lattice::Error> {
    let mut all = builtin();
    for (k, v) in user {
        labels::validate_user_label(k, v)?;
        all.insert(k.clone(), v.clone());
    }
    Ok(all)
}

/// Resident set size of this process, in bytes.
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_present_and_protected() {
        let b = builtin();
        for key in [labels::ARCH, labels::OS, labels::HOSTNAME, labels::CPUS] {
            assert!(b.contains_key(key), "{key}");
        }
        let user: Labels = [("trellis.arch".to_string(), "riscv".to_string())].into();
        let err = merge(&user).unwrap_err().to_string();
        assert!(err.contains("built in"), "{err}");
        let user: Labels = [("tier".to_string(), "edge".to_string())].into();
        assert_eq!(merge(&user).unwrap()["tier"], "edge");
    }
}
