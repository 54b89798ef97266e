//! `wasi:gpio@0.2.0` (vendored in `interfaces/wit/gpio`), served in-process to components
//! granted pins: every resource names a pin by its label, and every operation goes through
//! the component's [`ComponentPins`] (so a grant change re-points it, and a pin that is not
//! granted is refused). Lines stay claimed by the component between its calls.

use std::sync::Arc;

use tokio::sync::broadcast;
use trellis_gpio::{Bias, Direction, Edge, EdgeEvent, GpioError, LineHandle, LineSettings};
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};
use wasmtime_wasi::p2::DynPollable;

use super::pins::{ComponentPins, PinRefusal};

mod analog_impl;
mod digital_impl;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../interfaces/wit/gpio",
        world: "wasi:gpio/imports",
        imports: {
            "wasi:gpio/delay.[method]delay.delay-ns": async,
            "wasi:gpio/delay.[method]delay.delay-us": async,
            "wasi:gpio/delay.[method]delay.delay-ms": async,
            default: trappable,
        },
        with: {
            "wasi:io/poll": wasmtime_wasi::p2::bindings::io::poll,
            "wasi:gpio/digital.digital-out-pin": crate::gpio::wasi::DigitalOut,
            "wasi:gpio/digital.stateful-digital-out-pin": crate::gpio::wasi::StatefulOut,
            "wasi:gpio/digital.digital-in-pin": crate::gpio::wasi::DigitalIn,
            "wasi:gpio/digital.digital-in-out-pin": crate::gpio::wasi::DigitalInOut,
            "wasi:gpio/analog.analog-out-pin": crate::gpio::wasi::AnalogOut,
            "wasi:gpio/analog.analog-in-pin": crate::gpio::wasi::AnalogIn,
            "wasi:gpio/analog.analog-in-out-pin": crate::gpio::wasi::AnalogInOut,
            "wasi:gpio/delay.delay": crate::gpio::wasi::Delay,
        },
    });
}

use bindings::wasi::gpio::analog;
use bindings::wasi::gpio::delay;
use bindings::wasi::gpio::digital::{self, DigitalConfig, DigitalFlag, PinState};
use bindings::wasi::gpio::general::{
    self, ActiveLevel, GpioError as WitError, PinMode, PullResistor,
};

/// One instance's GPIO: the component's pins, if it was granted any.
#[derive(Clone, Default)]
pub struct GpioCtx(pub Option<Arc<ComponentPins>>);

/// What the bindings see: the context and the store's resource table.
pub struct GpioView<'a> {
    pub ctx: &'a mut GpioCtx,
    pub table: &'a mut ResourceTable,
}

struct HasGpio;

impl HasData for HasGpio {
    type Data<'a> = GpioView<'a>;
}

/// Adds `wasi:gpio` to `linker`.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> GpioView<'_>,
) -> wasmtime::Result<()> {
    general::add_to_linker::<T, HasGpio>(linker, get)?;
    digital::add_to_linker::<T, HasGpio>(linker, get)?;
    analog::add_to_linker::<T, HasGpio>(linker, get)?;
    delay::add_to_linker::<T, HasGpio>(linker, get)?;
    Ok(())
}

/// Every pin resource: the pin it names and how it asked for it.
trait Entry: Send + 'static {
    fn entry(&self) -> &PinEntry;
    fn entry_mut(&mut self) -> &mut PinEntry;
}

macro_rules! pin_resources {
    ($($name:ident),*) => {$(
        pub struct $name(PinEntry);
        impl Entry for $name {
            fn entry(&self) -> &PinEntry { &self.0 }
            fn entry_mut(&mut self) -> &mut PinEntry { &mut self.0 }
        }
    )*};
}

pin_resources!(
    DigitalOut,
    StatefulOut,
    DigitalIn,
    DigitalInOut,
    AnalogOut,
    AnalogIn,
    AnalogInOut
);

/// A pin as one resource holds it.
#[derive(Clone, Debug)]
pub struct PinEntry {
    label: String,
    settings: LineSettings,
}

pub struct Delay;

type Res<T> = wasmtime::Result<Result<T, WitError>>;

fn wit_error(r: PinRefusal) -> WitError {
    match r {
        PinRefusal::NotAllowed => WitError::PinNotAllowed,
        PinRefusal::Undefined => WitError::UndefinedPinLabel,
        PinRefusal::Gpio(e) => match e {
            GpioError::InUse { .. } => WitError::AlreadyInUse,
            GpioError::WrongDirection { .. } => WitError::PinModeNotAllowed,
            GpioError::Unsupported(_) => WitError::PinModeNotAvailable,
            GpioError::Released | GpioError::NoSuchChip(_) | GpioError::NoSuchLine { .. } => {
                WitError::ResourceInvalidated
            }
            GpioError::Hardware(m) => WitError::Other(m),
        },
    }
}

impl GpioView<'_> {
    fn pins(&self) -> Result<&Arc<ComponentPins>, WitError> {
        self.ctx.0.as_ref().ok_or(WitError::PinNotAllowed)
    }

    /// Claims (or re-claims, after a grant change) the pin an entry names.
    fn line(&self, entry: &PinEntry) -> Result<Arc<dyn LineHandle>, WitError> {
        let pins = self.pins()?;
        pins.claim(&entry.label, &entry.settings)
            .map(|(_, h)| h)
            .map_err(wit_error)
    }

    fn open(&self, label: &str, settings: LineSettings) -> Result<PinEntry, WitError> {
        let entry = PinEntry {
            label: label.to_string(),
            settings,
        };
        self.line(&entry)?;
        Ok(entry)
    }
}

/// Settings from `digital-flag`s on top of `base`.
fn digital_settings(flags: &[DigitalFlag], base: LineSettings) -> Result<LineSettings, WitError> {
    let f = flags.iter().fold(DigitalFlag::empty(), |a, b| a | *b);
    let both = |a: DigitalFlag, b: DigitalFlag| f.contains(a) && f.contains(b);
    if both(DigitalFlag::ACTIVE_HIGH, DigitalFlag::ACTIVE_LOW)
        || both(DigitalFlag::PULL_UP, DigitalFlag::PULL_DOWN)
        || both(DigitalFlag::ACTIVE, DigitalFlag::INACTIVE)
        || both(DigitalFlag::INPUT, DigitalFlag::OUTPUT)
    {
        return Err(WitError::InvalidFlag);
    }
    let mut s = base;
    s.active_low = f.contains(DigitalFlag::ACTIVE_LOW);
    if f.contains(DigitalFlag::PULL_UP) {
        s.bias = Some(Bias::PullUp);
    } else if f.contains(DigitalFlag::PULL_DOWN) {
        s.bias = Some(Bias::PullDown);
    }
    if f.contains(DigitalFlag::ACTIVE) {
        s.initial = true;
    }
    if f.contains(DigitalFlag::OUTPUT) {
        s.direction = Direction::Output;
    } else if f.contains(DigitalFlag::INPUT) {
        s.direction = Direction::Input;
    }
    Ok(s)
}

fn digital_config(e: &PinEntry) -> DigitalConfig {
    DigitalConfig {
        label: e.label.clone(),
        pin_mode: match e.settings.direction {
            Direction::Input => PinMode::In,
            Direction::Output => PinMode::Out,
        },
        active_level: if e.settings.active_low {
            ActiveLevel::ActiveLow
        } else {
            ActiveLevel::ActiveHigh
        },
        pull_resistor: e.settings.bias.map(|b| match b {
            Bias::PullUp => PullResistor::PullUp,
            Bias::PullDown => PullResistor::PullDown,
        }),
    }
}

fn state(active: bool) -> PinState {
    if active {
        PinState::Active
    } else {
        PinState::Inactive
    }
}

/// What a watch waits for.
#[derive(Clone, Copy, Debug)]
enum Want {
    State(bool),
    Edge(Edge),
}

/// A `pollable` over a pin: ready once what it waits for happened (and from then on).
pub struct Watch {
    handle: Arc<dyn LineHandle>,
    events: broadcast::Receiver<EdgeEvent>,
    want: Want,
    fired: bool,
}

#[wasmtime_wasi::async_trait]
impl wasmtime_wasi::p2::Pollable for Watch {
    async fn ready(&mut self) {
        loop {
            if self.fired {
                return;
            }
            if let Want::State(active) = self.want {
                if self.handle.get().ok() == Some(active) {
                    self.fired = true;
                    return;
                }
            }
            match self.events.recv().await {
                Ok(e) => {
                    if let Want::Edge(edge) = self.want {
                        self.fired = e.edge == edge;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                // The line is gone: ready, so the guest is not stuck; its next read fails.
                Err(broadcast::error::RecvError::Closed) => self.fired = true,
            }
        }
    }
}

impl GpioView<'_> {
    fn entry<T: Entry>(&self, r: &Resource<T>) -> wasmtime::Result<PinEntry> {
        Ok(self.table.get(r)?.entry().clone())
    }

    /// The line of a resource, claimed as it asked.
    fn line_of<T: Entry>(
        &self,
        r: &Resource<T>,
    ) -> wasmtime::Result<Result<Arc<dyn LineHandle>, WitError>> {
        let entry = self.entry(r)?;
        Ok(self.line(&entry))
    }

    fn set_pin<T: Entry>(&self, r: &Resource<T>, active: bool) -> Res<()> {
        Ok(self
            .line_of(r)?
            .and_then(|l| l.set(active).map_err(|e| wit_error(PinRefusal::Gpio(e)))))
    }

    fn read_pin<T: Entry>(&self, r: &Resource<T>) -> Res<bool> {
        Ok(self
            .line_of(r)?
            .and_then(|l| l.get().map_err(|e| wit_error(PinRefusal::Gpio(e)))))
    }

    fn pin_ready<T: Entry>(&self, r: &Resource<T>) -> wasmtime::Result<bool> {
        Ok(self.line_of(r)?.is_ok())
    }

    /// Creates a resource for the pin `label` with `settings`.
    fn create<T: Entry>(
        &mut self,
        label: &str,
        settings: Result<LineSettings, WitError>,
        make: fn(PinEntry) -> T,
    ) -> Res<Resource<T>> {
        match settings.and_then(|s| self.open(label, s)) {
            Ok(entry) => Ok(Ok(self.table.push(make(entry))?)),
            Err(e) => Ok(Err(e)),
        }
    }

    /// Switches an in-out pin's direction (its line is reclaimed so).
    fn set_mode<T: Entry>(&mut self, r: &Resource<T>, mode: PinMode) -> Res<()> {
        let mut entry = self.entry(r)?;
        entry.settings.direction = match mode {
            PinMode::In => Direction::Input,
            PinMode::Out => Direction::Output,
        };
        if let Err(e) = self.line(&entry) {
            return Ok(Err(e));
        }
        *self.table.get_mut(r)?.entry_mut() = entry;
        Ok(Ok(()))
    }

    fn watch(&mut self, entry: &PinEntry, want: Want) -> Res<Resource<DynPollable>> {
        let settings = LineSettings {
            edges: true,
            ..entry.settings
        };
        let handle = match self.pins().and_then(|p| {
            p.claim(&entry.label, &settings)
                .map(|(_, h)| h)
                .map_err(wit_error)
        }) {
            Ok(h) => h,
            Err(e) => return Ok(Err(e)),
        };
        let watch = Watch {
            events: handle.events(),
            handle,
            want,
            fired: false,
        };
        let r = self.table.push(watch)?;
        Ok(Ok(wasmtime_wasi::p2::subscribe(self.table, r)?))
    }
}
