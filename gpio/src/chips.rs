//! Every chip of a host by name, and who holds which line: a component claims a line once
//! and keeps it (its instances come and go per call) until it stops, its grant changes or
//! the chip goes. Character devices are found under `/dev` and followed as they come and go.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::cdev::CdevChip;
use crate::line::{Backend, ChipInfo, Direction, GpioError, LineHandle, LineSettings};
use crate::sim::SimChip;

/// Owners are `{component id}#{n}` (one per running copy of a component, so a replaced copy
/// releasing its lines never releases its successor's); people see the component id.
fn holder_name(owner: &str) -> String {
    owner.split('#').next().unwrap_or(owner).to_string()
}

fn holder(owner: &str) -> String {
    format!("component `{}`", holder_name(owner))
}

/// Simulated chips a host may have at most.
pub const MAX_SIM_CHIPS: usize = 16;

struct Claim {
    owner: String,
    settings: LineSettings,
    handle: Arc<dyn LineHandle>,
}

#[derive(Default)]
struct Inner {
    chips: BTreeMap<String, Arc<dyn Backend>>,
    claims: HashMap<(String, u32), Claim>,
}

/// The chips of one host.
pub struct Chips {
    inner: Mutex<Inner>,
    dev: PathBuf,
    /// The chip names, sent on every change (for the host's labels).
    names: watch::Sender<Vec<String>>,
}

impl Chips {
    /// No chips yet; character devices are looked for in `dev` (normally `/dev`).
    pub fn new(dev: impl Into<PathBuf>) -> Arc<Self> {
        Arc::new(Self {
            inner: Mutex::new(Inner::default()),
            dev: dev.into(),
            names: watch::channel(Vec::new()).0,
        })
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Inner>, GpioError> {
        self.inner
            .lock()
            .map_err(|_| GpioError::Hardware("GPIO state lost".into()))
    }

    fn publish_names(&self, inner: &Inner) {
        let names: Vec<String> = inner.chips.keys().cloned().collect();
        self.names.send_if_modified(|n| {
            let changed = *n != names;
            *n = names;
            changed
        });
    }

    /// The chip names now and on every change.
    pub fn names(&self) -> watch::Receiver<Vec<String>> {
        self.names.subscribe()
    }

    /// Adds a simulated chip.
    pub fn add_sim(&self, name: &str, lines: u32) -> Result<(), GpioError> {
        let chip = SimChip::new(name, lines)?;
        let mut inner = self.lock()?;
        if inner.chips.contains_key(name) {
            return Err(GpioError::Unsupported(format!(
                "chip `{name}` exists already"
            )));
        }
        if inner.chips.values().filter(|c| c.simulated()).count() >= MAX_SIM_CHIPS {
            return Err(GpioError::Unsupported(format!(
                "at most {MAX_SIM_CHIPS} simulated chips"
            )));
        }
        inner.chips.insert(name.to_string(), chip);
        self.publish_names(&inner);
        Ok(())
    }

    /// Removes a chip and every claim on it (their holders see `Released`).
    pub fn remove(&self, name: &str) -> Result<(), GpioError> {
        let mut inner = self.lock()?;
        inner
            .chips
            .remove(name)
            .ok_or_else(|| GpioError::NoSuchChip(name.to_string()))?;
        inner.claims.retain(|(chip, _), _| chip != name);
        self.publish_names(&inner);
        Ok(())
    }

    /// Looks at `/dev/gpiochip*` again: adds the chips that appeared, removes those that
    /// went. Returns whether anything changed.
    pub fn rescan(&self) -> bool {
        let found: BTreeMap<String, PathBuf> = std::fs::read_dir(&self.dev)
            .map(|entries| {
                entries
                    .flatten()
                    .filter_map(|e| {
                        let name = e.file_name().to_str()?.to_string();
                        name.starts_with("gpiochip").then(|| (name, e.path()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let Ok(mut inner) = self.lock() else {
            return false;
        };
        let gone: Vec<String> = inner
            .chips
            .iter()
            .filter(|(name, c)| !c.simulated() && !found.contains_key(*name))
            .map(|(name, _)| name.clone())
            .collect();
        let mut changed = !gone.is_empty();
        for name in gone {
            inner.chips.remove(&name);
            inner.claims.retain(|(chip, _), _| *chip != name);
            tracing::info!(chip = %name, "GPIO chip gone");
        }
        for (name, path) in found {
            if inner.chips.contains_key(&name) {
                continue;
            }
            match CdevChip::open(&path) {
                Ok(chip) => {
                    inner.chips.insert(name.clone(), Arc::new(chip));
                    tracing::info!(chip = %name, "GPIO chip found");
                    changed = true;
                }
                Err(e) => tracing::debug!(path = %path.display(), error = %e, "not a GPIO chip"),
            }
        }
        if changed {
            self.publish_names(&inner);
        }
        changed
    }

    /// The directory character devices are looked for in.
    pub fn dev_dir(&self) -> &Path {
        &self.dev
    }

    fn chip(&self, name: &str) -> Result<Arc<dyn Backend>, GpioError> {
        self.lock()?
            .chips
            .get(name)
            .cloned()
            .ok_or_else(|| GpioError::NoSuchChip(name.to_string()))
    }

    /// Gives `owner` the line with `settings`: requests it, or reconfigures the one `owner`
    /// already holds. Another holder on this host makes it `InUse`.
    pub fn claim(
        &self,
        owner: &str,
        chip: &str,
        line: u32,
        settings: &LineSettings,
    ) -> Result<Arc<dyn LineHandle>, GpioError> {
        let key = (chip.to_string(), line);
        let mut settings = *settings;
        let backend = {
            let inner = self.lock()?;
            if let Some(c) = inner.claims.get(&key) {
                if c.owner != owner {
                    return Err(GpioError::InUse {
                        chip: chip.to_string(),
                        line,
                        by: holder(&c.owner),
                    });
                }
                // An input being watched stays watched when its holder also reads it.
                if c.settings.direction == Direction::Input
                    && settings.direction == Direction::Input
                {
                    settings.edges |= c.settings.edges;
                    settings.debounce = settings.debounce.or(c.settings.debounce);
                }
                if c.settings == settings {
                    return Ok(c.handle.clone());
                }
            }
            inner
                .chips
                .get(chip)
                .cloned()
                .ok_or_else(|| GpioError::NoSuchChip(chip.to_string()))?
        };
        let existing = self.lock()?.claims.get(&key).map(|c| c.handle.clone());
        let handle = match existing {
            Some(h) => {
                h.reconfigure(&settings)?;
                h
            }
            // The kernel call happens outside the lock.
            None => backend.request(line, &settings, &holder_name(owner))?,
        };
        let mut inner = self.lock()?;
        if !inner.chips.contains_key(chip) {
            return Err(GpioError::NoSuchChip(chip.to_string()));
        }
        match inner.claims.get(&key) {
            Some(c) if c.owner != owner => Err(GpioError::InUse {
                chip: chip.to_string(),
                line,
                by: holder(&c.owner),
            }),
            _ => {
                inner.claims.insert(
                    key,
                    Claim {
                        owner: owner.to_string(),
                        settings,
                        handle: handle.clone(),
                    },
                );
                Ok(handle)
            }
        }
    }

    /// The line `owner` holds, if it holds it.
    pub fn held(&self, owner: &str, chip: &str, line: u32) -> Option<Arc<dyn LineHandle>> {
        let inner = self.lock().ok()?;
        inner
            .claims
            .get(&(chip.to_string(), line))
            .filter(|c| c.owner == owner)
            .map(|c| c.handle.clone())
    }

    /// How `owner` holds a line, if it holds it.
    pub fn held_settings(&self, owner: &str, chip: &str, line: u32) -> Option<LineSettings> {
        let inner = self.lock().ok()?;
        inner
            .claims
            .get(&(chip.to_string(), line))
            .filter(|c| c.owner == owner)
            .map(|c| c.settings)
    }

    /// Releases one line `owner` holds.
    pub fn release(&self, owner: &str, chip: &str, line: u32) {
        if let Ok(mut inner) = self.lock() {
            let key = (chip.to_string(), line);
            if inner.claims.get(&key).is_some_and(|c| c.owner == owner) {
                inner.claims.remove(&key);
            }
        }
    }

    /// Releases every line `owner` holds (it stopped).
    pub fn release_all(&self, owner: &str) {
        if let Ok(mut inner) = self.lock() {
            inner.claims.retain(|_, c| c.owner != owner);
        }
    }

    /// Every chip with its lines; lines held here show their holder.
    pub fn list(&self) -> Vec<ChipInfo> {
        let (chips, holders): (Vec<_>, HashMap<(String, u32), String>) = match self.lock() {
            Ok(inner) => (
                inner.chips.values().cloned().collect(),
                inner
                    .claims
                    .iter()
                    .map(|(k, c)| (k.clone(), holder(&c.owner)))
                    .collect(),
            ),
            Err(_) => return Vec::new(),
        };
        chips
            .into_iter()
            .filter_map(|c| c.info().ok())
            .map(|mut info| {
                for l in &mut info.lines {
                    if let Some(h) = holders.get(&(info.name.clone(), l.offset)) {
                        l.used_by = Some(h.clone());
                    }
                }
                info
            })
            .collect()
    }

    /// The physical level of a line (of a line held here, as its holder sees it through
    /// active-low).
    pub fn get(&self, chip: &str, line: u32) -> Result<bool, GpioError> {
        let backend = self.chip(chip)?;
        if backend.simulated() {
            return backend.level(line);
        }
        let held = self
            .lock()?
            .claims
            .get(&(chip.to_string(), line))
            .map(|c| (c.handle.clone(), c.settings.active_low));
        match held {
            Some((h, active_low)) => Ok(h.get()? != active_low),
            None => backend.level(line),
        }
    }

    /// Drives a simulated input to a physical level.
    pub fn set(&self, chip: &str, line: u32, high: bool) -> Result<(), GpioError> {
        self.chip(chip)?.drive(line, high)
    }

    /// Whether a line named `name` exists on any chip (for telling an unknown label from a
    /// known pin that was not granted).
    pub fn has_line_named(&self, name: &str) -> bool {
        self.list()
            .iter()
            .any(|c| c.lines.iter().any(|l| !l.name.is_empty() && l.name == name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_are_per_owner_and_released_with_the_chip() {
        let dir = tempfile_dir();
        let chips = Chips::new(&dir);
        chips.add_sim("sim0", 4).unwrap();
        let names = chips.names();
        assert_eq!(*names.borrow(), vec!["sim0".to_string()]);
        let led = chips
            .claim("led", "sim0", 1, &LineSettings::output(true))
            .unwrap();
        assert!(chips.get("sim0", 1).unwrap());
        assert!(matches!(
            chips.claim("button", "sim0", 1, &LineSettings::input()),
            Err(GpioError::InUse { .. })
        ));
        // The same owner asking again with other settings reconfigures its own line.
        chips
            .claim("led", "sim0", 1, &LineSettings::input())
            .unwrap();
        assert!(matches!(
            led.set(true),
            Err(GpioError::WrongDirection { .. })
        ));
        chips.remove("sim0").unwrap();
        assert!(names.has_changed().unwrap());
        assert!(matches!(
            chips.claim("led", "sim0", 1, &LineSettings::input()),
            Err(GpioError::NoSuchChip(_))
        ));
        assert!(chips.list().is_empty());
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("trellis-gpio-test-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        dir
    }
}
