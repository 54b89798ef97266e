//! `wasi:gpio/digital`: every resource a pin, every method a line operation.

use wasmtime::component::Resource;
use wasmtime_wasi::p2::DynPollable;

use super::bindings::wasi::gpio::digital::{
    self, DigitalConfig, DigitalFlag, HostDigitalInOutPin, HostDigitalInPin, HostDigitalOutPin,
    HostStatefulDigitalOutPin, PinState,
};
use super::bindings::wasi::gpio::general::PinMode;
use super::{
    digital_config, digital_settings, state, DigitalIn, DigitalInOut, DigitalOut, GpioView, Res,
    StatefulOut, Want,
};
use trellis_gpio::{Edge, LineSettings};

impl digital::Host for GpioView<'_> {}

impl HostDigitalOutPin for GpioView<'_> {
    fn get(&mut self, label: String, flags: Vec<DigitalFlag>) -> Res<Resource<DigitalOut>> {
        let s = digital_settings(&flags, LineSettings::output(false)).map(|mut s| {
            s.direction = trellis_gpio::Direction::Output;
            s
        });
        self.create(&label, s, DigitalOut)
    }
    fn get_config(&mut self, r: Resource<DigitalOut>) -> Res<DigitalConfig> {
        Ok(Ok(digital_config(&self.entry(&r)?)))
    }
    fn is_ready(&mut self, r: Resource<DigitalOut>) -> wasmtime::Result<bool> {
        self.pin_ready(&r)
    }
    fn set_state(&mut self, r: Resource<DigitalOut>, s: PinState) -> Res<()> {
        self.set_pin(&r, s == PinState::Active)
    }
    fn set_active(&mut self, r: Resource<DigitalOut>) -> Res<()> {
        self.set_pin(&r, true)
    }
    fn set_inactive(&mut self, r: Resource<DigitalOut>) -> Res<()> {
        self.set_pin(&r, false)
    }
    fn drop(&mut self, r: Resource<DigitalOut>) -> wasmtime::Result<()> {
        self.table.delete(r)?;
        Ok(())
    }
}

impl HostStatefulDigitalOutPin for GpioView<'_> {
    fn get(&mut self, label: String, flags: Vec<DigitalFlag>) -> Res<Resource<StatefulOut>> {
        let s = digital_settings(&flags, LineSettings::output(false)).map(|mut s| {
            s.direction = trellis_gpio::Direction::Output;
            s
        });
        self.create(&label, s, StatefulOut)
    }
    fn get_config(&mut self, r: Resource<StatefulOut>) -> Res<DigitalConfig> {
        Ok(Ok(digital_config(&self.entry(&r)?)))
    }
    fn is_ready(&mut self, r: Resource<StatefulOut>) -> wasmtime::Result<bool> {
        self.pin_ready(&r)
    }
    fn set_state(&mut self, r: Resource<StatefulOut>, s: PinState) -> Res<()> {
        self.set_pin(&r, s == PinState::Active)
    }
    fn set_active(&mut self, r: Resource<StatefulOut>) -> Res<()> {
        self.set_pin(&r, true)
    }
    fn set_inactive(&mut self, r: Resource<StatefulOut>) -> Res<()> {
        self.set_pin(&r, false)
    }
    fn toggle(&mut self, r: Resource<StatefulOut>) -> Res<()> {
        match self.read_pin(&r)? {
            Ok(now) => self.set_pin(&r, !now),
            Err(e) => Ok(Err(e)),
        }
    }
    fn is_set_active(&mut self, r: Resource<StatefulOut>) -> Res<bool> {
        self.read_pin(&r)
    }
    fn is_set_inactive(&mut self, r: Resource<StatefulOut>) -> Res<bool> {
        Ok(self.read_pin(&r)?.map(|a| !a))
    }
    fn get_state(&mut self, r: Resource<StatefulOut>) -> Res<PinState> {
        Ok(self.read_pin(&r)?.map(state))
    }
    fn drop(&mut self, r: Resource<StatefulOut>) -> wasmtime::Result<()> {
        self.table.delete(r)?;
        Ok(())
    }
}

impl HostDigitalInPin for GpioView<'_> {
    fn get(&mut self, label: String, flags: Vec<DigitalFlag>) -> Res<Resource<DigitalIn>> {
        let s = digital_settings(&flags, LineSettings::input()).map(|mut s| {
            s.direction = trellis_gpio::Direction::Input;
            s
        });
        self.create(&label, s, DigitalIn)
    }
    fn get_config(&mut self, r: Resource<DigitalIn>) -> Res<DigitalConfig> {
        Ok(Ok(digital_config(&self.entry(&r)?)))
    }
    fn is_ready(&mut self, r: Resource<DigitalIn>) -> wasmtime::Result<bool> {
        self.pin_ready(&r)
    }
    fn read(&mut self, r: Resource<DigitalIn>) -> Res<PinState> {
        Ok(self.read_pin(&r)?.map(state))
    }
    fn is_active(&mut self, r: Resource<DigitalIn>) -> Res<bool> {
        self.read_pin(&r)
    }
    fn is_inactive(&mut self, r: Resource<DigitalIn>) -> Res<bool> {
        Ok(self.read_pin(&r)?.map(|a| !a))
    }
    fn watch_state(&mut self, r: Resource<DigitalIn>, s: PinState) -> Res<Resource<DynPollable>> {
        let e = self.entry(&r)?;
        self.watch(&e, Want::State(s == PinState::Active))
    }
    fn watch_active(&mut self, r: Resource<DigitalIn>) -> Res<Resource<DynPollable>> {
        let e = self.entry(&r)?;
        self.watch(&e, Want::State(true))
    }
    fn watch_inactive(&mut self, r: Resource<DigitalIn>) -> Res<Resource<DynPollable>> {
        let e = self.entry(&r)?;
        self.watch(&e, Want::State(false))
    }
    fn watch_falling_edge(&mut self, r: Resource<DigitalIn>) -> Res<Resource<DynPollable>> {
        let e = self.entry(&r)?;
        self.watch(&e, Want::Edge(Edge::Falling))
    }
    fn watch_rising_edge(&mut self, r: Resource<DigitalIn>) -> Res<Resource<DynPollable>> {
        let e = self.entry(&r)?;
        self.watch(&e, Want::Edge(Edge::Rising))
    }
    fn drop(&mut self, r: Resource<DigitalIn>) -> wasmtime::Result<()> {
        self.table.delete(r)?;
        Ok(())
    }
}

impl HostDigitalInOutPin for GpioView<'_> {
    fn get(&mut self, label: String, flags: Vec<DigitalFlag>) -> Res<Resource<DigitalInOut>> {
        let s = digital_settings(&flags, LineSettings::input());
        self.create(&label, s, DigitalInOut)
    }
    fn get_config(&mut self, r: Resource<DigitalInOut>) -> Res<DigitalConfig> {
        Ok(Ok(digital_config(&self.entry(&r)?)))
    }
    fn is_ready(&mut self, r: Resource<DigitalInOut>) -> wasmtime::Result<bool> {
        self.pin_ready(&r)
    }
    fn set_state(&mut self, r: Resource<DigitalInOut>, s: PinState) -> Res<()> {
        self.set_pin(&r, s == PinState::Active)
    }
    fn set_active(&mut self, r: Resource<DigitalInOut>) -> Res<()> {
        self.set_pin(&r, true)
    }
    fn set_inactive(&mut self, r: Resource<DigitalInOut>) -> Res<()> {
        self.set_pin(&r, false)
    }
    fn read(&mut self, r: Resource<DigitalInOut>) -> Res<PinState> {
        Ok(self.read_pin(&r)?.map(state))
    }
    fn is_active(&mut self, r: Resource<DigitalInOut>) -> Res<bool> {
        self.read_pin(&r)
    }
    fn is_inactive(&mut self, r: Resource<DigitalInOut>) -> Res<bool> {
        Ok(self.read_pin(&r)?.map(|a| !a))
    }
    fn set_pin_mode(&mut self, r: Resource<DigitalInOut>, mode: PinMode) -> Res<()> {
        self.set_mode(&r, mode)
    }
    fn drop(&mut self, r: Resource<DigitalInOut>) -> wasmtime::Result<()> {
        self.table.delete(r)?;
        Ok(())
    }
}
