//! The labels a host carries: built-in facts about the machine plus the user's, changed at
//! run time by label requests.

use std::path::Path;
use std::sync::RwLock;

use trellis_lattice::labels::{self, Labels};
use trellis_lattice::limits::MAX_USER_LABELS;
use trellis_lattice::ControlError;

/// The host's labels now.
#[derive(Debug, Default)]
pub struct HostLabels {
    labels: RwLock<Labels>,
}

impl HostLabels {
    pub fn new(labels: Labels) -> Self {
        Self {
            labels: RwLock::new(labels),
        }
    }

    pub fn get(&self) -> Labels {
        self.labels.read().map(|l| l.clone()).unwrap_or_default()
    }

    /// Sets a user label; returns every label after the change.
    pub fn put(&self, key: &str, value: &str) -> Result<Labels, ControlError> {
        labels::validate_user_label(key, value).map_err(ControlError::from)?;
        let mut all = self.labels.write().unwrap_or_else(|p| p.into_inner());
        let user = all.keys().filter(|k| !labels::is_builtin(k)).count();
        if !all.contains_key(key) && user >= MAX_USER_LABELS {
            return Err(ControlError::refused(format!(
                "this host already has {user} labels, the most it takes (delete one first)"
            )));
        }
        all.insert(key.to_string(), value.to_string());
        Ok(all.clone())
    }

    /// Sets or removes built-in labels (facts that changed, such as chips coming and
    /// going); returns every label when anything changed.
    pub fn set_builtin(&self, changes: &[(&str, Option<String>)]) -> Option<Labels> {
        let mut all = self.labels.write().unwrap_or_else(|p| p.into_inner());
        let before = all.clone();
        for (key, value) in changes {
            match value {
                Some(v) => all.insert(key.to_string(), v.clone()),
                None => all.remove(*key),
            };
        }
        (*all != before).then(|| all.clone())
    }

    /// Removes a user label; returns every label after the change.
    pub fn delete(&self, key: &str) -> Result<Labels, ControlError> {
        labels::validate_user_label(key, "").map_err(ControlError::from)?;
        let mut all = self.labels.write().unwrap_or_else(|p| p.into_inner());
        if all.remove(key).is_none() {
            return Err(ControlError::not_found(format!(
                "host has no label {key:?}"
            )));
        }
        Ok(all.clone())
    }
}

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
    if let Some(model) = DEVICE_TREE_MODEL
        .iter()
        .find_map(|p| board_model(Path::new(p)))
    {
        l.insert(labels::BOARD.into(), model);
    }
    l
}

/// Where the kernel shows the device tree's `model` (boards; absent on PCs and VMs).
const DEVICE_TREE_MODEL: &[&str] = &[
    "/sys/firmware/devicetree/base/model",
    "/proc/device-tree/model",
];

/// The board's model from a device-tree `model` file: a NUL-terminated string, read up to
/// the longest label value; nothing when it is missing, not a regular file, or not a
/// printable label value.
fn board_model(path: &Path) -> Option<String> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let mut raw = Vec::new();
    file.take(labels::MAX_VALUE_LEN as u64 + 1)
        .read_to_end(&mut raw)
        .ok()?;
    let text = std::str::from_utf8(&raw).ok()?;
    let model = text.trim_end_matches('\0').trim();
    (!model.is_empty() && labels::validate_value(labels::BOARD, model).is_ok())
        .then(|| model.to_string())
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
    memory_bytes().map(|b| b >> 20)
}

/// The machine's memory, in bytes.
pub fn memory_bytes() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The GPIO labels for a host with these chips (none without chips).
pub fn gpio_labels(chips: &[String]) -> Vec<(&'static str, Option<String>)> {
    if chips.is_empty() {
        return vec![(labels::GPIO, None), (labels::GPIO_CHIPS, None)];
    }
    let mut names = chips.join(",");
    names.truncate(labels::MAX_VALUE_LEN);
    vec![
        (labels::GPIO, Some(labels::GPIO_PRESENT.to_string())),
        (labels::GPIO_CHIPS, Some(names)),
    ]
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
    fn user_labels_change_builtins_do_not() {
        let l = HostLabels::new(builtin());
        let after = l.put("zone", "north").unwrap();
        assert_eq!(after["zone"], "north");
        assert_eq!(l.get()["zone"], "north");
        let err = l.put("trellis.arch", "riscv").unwrap_err();
        assert_eq!(err.kind, trellis_lattice::ErrorKind::Invalid);
        assert!(!l.delete("zone").unwrap().contains_key("zone"));
        let err = l.delete("zone").unwrap_err();
        assert_eq!(err.kind, trellis_lattice::ErrorKind::NotFound);
        assert!(l.delete("trellis.os").is_err());
        assert!(l.get().contains_key("trellis.os"));
        for i in 0..MAX_USER_LABELS {
            l.put(&format!("k{i}"), "v").unwrap();
        }
        let err = l.put("one-more", "v").unwrap_err();
        assert_eq!(err.kind, trellis_lattice::ErrorKind::Refused);
        l.put("k0", "changed")
            .expect("changing an existing label is fine");
    }

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

    #[test]
    fn board_model_from_the_device_tree() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("model");
        std::fs::write(&model, b"Raspberry Pi 4 Model B Rev 1.4\0").unwrap();
        assert_eq!(
            crate::labels::board_model(&model).as_deref(),
            Some("Raspberry Pi 4 Model B Rev 1.4")
        );
        // Too long, control characters, empty, a directory, missing: no label.
        std::fs::write(&model, vec![b'x'; labels::MAX_VALUE_LEN + 1]).unwrap();
        assert_eq!(crate::labels::board_model(&model), None);
        std::fs::write(&model, b"board\nwith lines\0").unwrap();
        assert_eq!(crate::labels::board_model(&model), None);
        std::fs::write(&model, b"\0").unwrap();
        assert_eq!(crate::labels::board_model(&model), None);
        assert_eq!(crate::labels::board_model(dir.path()), None);
        assert_eq!(crate::labels::board_model(&dir.path().join("none")), None);
    }
}
