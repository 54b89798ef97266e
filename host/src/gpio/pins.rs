//! The pins one component may use and the lines it holds: its grant (`pins=label:chip:line`
//! in its config, followed as the config changes) and its claims on the host's chips, kept
//! for as long as the component runs (its instances come and go per call).

use std::sync::{Arc, RwLock};

use tokio::sync::watch;
use trellis_gpio::{parse_grants, Chips, GpioError, Grant, LineHandle, LineSettings};

/// Why a component cannot have a pin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinRefusal {
    /// The label names a line of this host (by its name, or as `CHIP:LINE`) that the
    /// component was not granted.
    NotAllowed,
    /// No grant and no line of this host has that name.
    Undefined,
    Gpio(GpioError),
}

/// One component's pins.
pub struct ComponentPins {
    owner: Arc<str>,
    chips: Arc<Chips>,
    grants: watch::Sender<Arc<Vec<Grant>>>,
    /// The `pins` value the grants came from.
    granted_from: RwLock<Option<String>>,
}

impl ComponentPins {
    pub fn new(
        owner: Arc<str>,
        chips: Arc<Chips>,
        config: &std::collections::BTreeMap<String, String>,
    ) -> Arc<Self> {
        let pins = Arc::new(Self {
            owner,
            chips,
            grants: watch::channel(Arc::new(Vec::new())).0,
            granted_from: RwLock::new(None),
        });
        pins.regrant(config);
        pins
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    pub fn chips(&self) -> &Arc<Chips> {
        &self.chips
    }

    /// The grants now and on every change.
    pub fn grants(&self) -> watch::Receiver<Arc<Vec<Grant>>> {
        self.grants.subscribe()
    }

    /// Reads the grant from the component's (new) config. Lines no longer granted, or now
    /// granted for another chip or line, are released at once. A `pins` value that does
    /// not parse grants nothing (and says why in the log).
    pub fn regrant(&self, config: &std::collections::BTreeMap<String, String>) {
        let value = config.get("pins").cloned();
        if let Ok(mut from) = self.granted_from.write() {
            if *from == value && from.is_some() {
                return;
            }
            *from = value.clone();
        }
        let fresh = match value.as_deref().map(parse_grants) {
            None => Vec::new(),
            Some(Ok(g)) => g,
            Some(Err(why)) => {
                tracing::warn!(component_id = %self.owner, %why, "the `pins` config is unusable: no pin is granted");
                Vec::new()
            }
        };
        let old = self.grants.borrow().clone();
        for g in old.iter().filter(|g| !fresh.contains(g)) {
            self.chips.release(&self.owner, &g.chip, g.line);
        }
        if *old != fresh {
            tracing::info!(component_id = %self.owner, pins = fresh.len(), "GPIO grant changed");
            self.grants.send_replace(Arc::new(fresh));
        }
    }

    /// The grant of `label`; a refusal is logged.
    pub fn resolve(&self, label: &str) -> Result<Grant, PinRefusal> {
        if let Some(g) = self.grants.borrow().iter().find(|g| g.label == label) {
            return Ok(g.clone());
        }
        let names_a_line = label.rsplit_once(':').is_some_and(|(chip, line)| {
            line.parse::<u32>().is_ok() && self.chips.names().borrow().iter().any(|c| c == chip)
        });
        let refusal = if names_a_line || self.chips.has_line_named(label) {
            PinRefusal::NotAllowed
        } else {
            PinRefusal::Undefined
        };
        tracing::warn!(component_id = %self.owner, pin = label, refusal = ?refusal, "GPIO pin refused: not granted");
        Err(refusal)
    }

    /// Claims the line granted as `label` with `settings`.
    pub fn claim(
        &self,
        label: &str,
        settings: &LineSettings,
    ) -> Result<(Grant, Arc<dyn LineHandle>), PinRefusal> {
        let grant = self.resolve(label)?;
        let handle = self
            .chips
            .claim(&self.owner, &grant.chip, grant.line, settings)
            .map_err(PinRefusal::Gpio)?;
        Ok((grant, handle))
    }

    /// How the component holds the line granted as `label`, if it holds it.
    pub fn held_direction(&self, label: &str) -> Option<trellis_gpio::Direction> {
        let grant = self
            .grants
            .borrow()
            .iter()
            .find(|g| g.label == label)
            .cloned()?;
        self.chips
            .held_settings(&self.owner, &grant.chip, grant.line)
            .map(|s| s.direction)
    }

    /// The line granted as `label`, as the component holds it now.
    pub fn held(&self, label: &str) -> Result<Arc<dyn LineHandle>, PinRefusal> {
        let grant = self.resolve(label)?;
        self.chips
            .held(&self.owner, &grant.chip, grant.line)
            .ok_or(PinRefusal::Gpio(GpioError::Released))
    }

    /// The component stopped: every line it held is released.
    pub fn release_all(&self) {
        self.chips.release_all(&self.owner);
    }
}
