//! `wasi:gpio/analog` and `delay`: analog out is PWM (simulated chips keep the duty cycle;
//! the character device has none, so it is `pin-mode-not-available` there); there is no
//! ADC behind either backend, so analog inputs are `pin-mode-not-available`.

use std::time::Duration;

use wasmtime::component::Resource;
use wasmtime_wasi::p2::DynPollable;

use super::bindings::wasi::gpio::analog::{
    self, AnalogConfig, AnalogFlag, HostAnalogInOutPin, HostAnalogInPin, HostAnalogOutPin,
    OutputMode,
};
use super::bindings::wasi::gpio::delay::{self, HostDelay};
use super::bindings::wasi::gpio::general::{self, GpioError as WitError, PinMode};
use super::{wit_error, AnalogIn, AnalogInOut, AnalogOut, Delay, Entry, GpioView, Res};
use crate::gpio::pins::PinRefusal;
use trellis_gpio::{Direction, LineSettings};

impl general::Host for GpioView<'_> {}
impl analog::Host for GpioView<'_> {}
impl delay::Host for GpioView<'_> {}

fn analog_config<T: Entry>(r: &T) -> AnalogConfig {
    let e = r.entry();
    AnalogConfig {
        label: e.label.clone(),
        pin_mode: match e.settings.direction {
            Direction::Input => PinMode::In,
            Direction::Output => PinMode::Out,
        },
        output_mode: (e.settings.direction == Direction::Output).then_some(OutputMode::Pwm),
    }
}

/// `pwm` (or nothing) is what these backends have; `dac` is not.
fn pwm_flags(flags: &[AnalogFlag]) -> Result<LineSettings, WitError> {
    let f = flags.iter().fold(AnalogFlag::empty(), |a, b| a | *b);
    if f.contains(AnalogFlag::DAC) {
        return Err(WitError::PinModeNotAvailable);
    }
    Ok(LineSettings::output(false))
}

impl GpioView<'_> {
    fn duty<T: Entry>(&self, r: &Resource<T>, duty: f32) -> Res<()> {
        if !duty.is_finite() {
            return Ok(Err(WitError::Other("the value is not a number".into())));
        }
        Ok(self
            .line_of(r)?
            .and_then(|l| l.set_duty(duty).map_err(|e| wit_error(PinRefusal::Gpio(e)))))
    }
}

fn raw_duty(value: u32) -> f32 {
    (value as f64 / u32::MAX as f64) as f32
}

impl HostAnalogOutPin for GpioView<'_> {
    fn get(&mut self, label: String, flags: Vec<AnalogFlag>) -> Res<Resource<AnalogOut>> {
        self.create(&label, pwm_flags(&flags), AnalogOut)
    }
    fn get_config(&mut self, r: Resource<AnalogOut>) -> Res<AnalogConfig> {
        Ok(Ok(analog_config(self.table.get(&r)?)))
    }
    fn is_ready(&mut self, r: Resource<AnalogOut>) -> wasmtime::Result<bool> {
        self.pin_ready(&r)
    }
    fn set_value_raw(&mut self, r: Resource<AnalogOut>, value: u32) -> Res<()> {
        self.duty(&r, raw_duty(value))
    }
    fn set_value(&mut self, r: Resource<AnalogOut>, value: f32) -> Res<()> {
        self.duty(&r, value)
    }
    fn drop(&mut self, r: Resource<AnalogOut>) -> wasmtime::Result<()> {
        self.table.delete(r)?;
        Ok(())
    }
}

impl HostAnalogInPin for GpioView<'_> {
    fn get(&mut self, label: String, _flags: Vec<AnalogFlag>) -> Res<Resource<AnalogIn>> {
        // Granted or not, there is no ADC to read: say which of the two it is.
        Ok(Err(match self.pins().map(|p| p.resolve(&label)) {
            Ok(Ok(_)) => WitError::PinModeNotAvailable,
            Ok(Err(r)) => wit_error(r),
            Err(e) => e,
        }))
    }
    fn get_config(&mut self, r: Resource<AnalogIn>) -> Res<AnalogConfig> {
        Ok(Ok(analog_config(self.table.get(&r)?)))
    }
    fn is_ready(&mut self, _r: Resource<AnalogIn>) -> wasmtime::Result<bool> {
        Ok(false)
    }
    fn read_raw(&mut self, _r: Resource<AnalogIn>) -> Res<u32> {
        Ok(Err(WitError::PinModeNotAvailable))
    }
    fn read(&mut self, _r: Resource<AnalogIn>) -> Res<f32> {
        Ok(Err(WitError::PinModeNotAvailable))
    }
    fn watch_above_raw(&mut self, _r: Resource<AnalogIn>, _v: u32) -> Res<Resource<DynPollable>> {
        Ok(Err(WitError::PinModeNotAvailable))
    }
    fn watch_above(&mut self, _r: Resource<AnalogIn>, _v: f32) -> Res<Resource<DynPollable>> {
        Ok(Err(WitError::PinModeNotAvailable))
    }
    fn watch_below_raw(&mut self, _r: Resource<AnalogIn>, _v: u32) -> Res<Resource<DynPollable>> {
        Ok(Err(WitError::PinModeNotAvailable))
    }
    fn watch_below(&mut self, _r: Resource<AnalogIn>, _v: f32) -> Res<Resource<DynPollable>> {
        Ok(Err(WitError::PinModeNotAvailable))
    }
    fn drop(&mut self, r: Resource<AnalogIn>) -> wasmtime::Result<()> {
        self.table.delete(r)?;
        Ok(())
    }
}

impl HostAnalogInOutPin for GpioView<'_> {
    fn get(&mut self, label: String, flags: Vec<AnalogFlag>) -> Res<Resource<AnalogInOut>> {
        self.create(&label, pwm_flags(&flags), AnalogInOut)
    }
    fn get_config(&mut self, r: Resource<AnalogInOut>) -> Res<AnalogConfig> {
        Ok(Ok(analog_config(self.table.get(&r)?)))
    }
    fn is_ready(&mut self, r: Resource<AnalogInOut>) -> wasmtime::Result<bool> {
        self.pin_ready(&r)
    }
    fn set_value_raw(&mut self, r: Resource<AnalogInOut>, value: u32) -> Res<()> {
        self.duty(&r, raw_duty(value))
    }
    fn set_value(&mut self, r: Resource<AnalogInOut>, value: f32) -> Res<()> {
        self.duty(&r, value)
    }
    fn read_raw(&mut self, _r: Resource<AnalogInOut>) -> Res<u32> {
        Ok(Err(WitError::PinModeNotAvailable))
    }
    fn read(&mut self, _r: Resource<AnalogInOut>) -> Res<f32> {
        Ok(Err(WitError::PinModeNotAvailable))
    }
    fn set_pin_mode(&mut self, r: Resource<AnalogInOut>, mode: PinMode) -> Res<()> {
        if mode == PinMode::In {
            return Ok(Err(WitError::PinModeNotAvailable));
        }
        self.set_mode(&r, mode)
    }
    fn drop(&mut self, r: Resource<AnalogInOut>) -> wasmtime::Result<()> {
        self.table.delete(r)?;
        Ok(())
    }
}

/// The longest one delay may be: a call's time limit ends it sooner anyway.
const MAX_DELAY: Duration = Duration::from_secs(3600);

async fn sleep(d: Duration) {
    tokio::time::sleep(d.min(MAX_DELAY)).await;
}

impl HostDelay for GpioView<'_> {
    async fn delay_ns(&mut self, _r: Resource<Delay>, ns: u64) {
        sleep(Duration::from_nanos(ns)).await;
    }
    async fn delay_us(&mut self, _r: Resource<Delay>, us: u64) {
        sleep(Duration::from_micros(us)).await;
    }
    async fn delay_ms(&mut self, _r: Resource<Delay>, ms: u64) {
        sleep(Duration::from_millis(ms)).await;
    }
    fn drop(&mut self, r: Resource<Delay>) -> wasmtime::Result<()> {
        self.table.delete(r)?;
        Ok(())
    }
}
