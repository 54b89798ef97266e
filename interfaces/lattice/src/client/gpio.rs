//! A host's GPIO: its chips and lines, reading a line, driving a simulated input.

use crate::control::Empty;
use crate::error::Result;
use crate::gpio::{self, GpioChips, GpioLine, GpioSet, GpioValue};

use super::hosts::unknown_host;
use super::LatticeClient;

impl LatticeClient {
    pub async fn gpio_list(&self, host_id: &str) -> Result<GpioChips> {
        self.request(
            self.subjects.gpio_list(host_id),
            &Empty {},
            self.config.request_timeout,
        )
        .await
        .map_err(|e| unknown_host(e, host_id))
    }

    /// The physical level of `chip:line` on a host.
    pub async fn gpio_get(&self, host_id: &str, chip: &str, line: u32) -> Result<GpioValue> {
        gpio::validate_chip_name(chip)?;
        gpio::validate_line(line)?;
        let req = GpioLine {
            chip: chip.to_string(),
            line,
        };
        self.request(
            self.subjects.gpio_get(host_id),
            &req,
            self.config.request_timeout,
        )
        .await
        .map_err(|e| unknown_host(e, host_id))
    }

    /// Drives a simulated input line of a host to `high` or low.
    pub async fn gpio_set(
        &self,
        host_id: &str,
        chip: &str,
        line: u32,
        high: bool,
    ) -> Result<GpioValue> {
        gpio::validate_chip_name(chip)?;
        gpio::validate_line(line)?;
        let req = GpioSet {
            chip: chip.to_string(),
            line,
            value: u8::from(high),
        };
        self.request(
            self.subjects.gpio_set(host_id),
            &req,
            self.config.request_timeout,
        )
        .await
        .map_err(|e| unknown_host(e, host_id))
    }
}
