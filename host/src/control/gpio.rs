//! `gpio.list`, `gpio.get`, `gpio.set`: the host's chips as `trellis gpio` sees them.

use trellis_gpio::{Chips, Direction, GpioError};
use trellis_lattice::gpio::{
    GpioChip, GpioChips, GpioDirection, GpioLine, GpioLineInfo, GpioSet, GpioValue,
};
use trellis_lattice::ControlError;

fn control_error(e: GpioError) -> ControlError {
    match e {
        GpioError::NoSuchChip(_) | GpioError::NoSuchLine { .. } => {
            ControlError::not_found(e.to_string())
        }
        GpioError::InUse { .. } => ControlError::conflict(e.to_string()),
        GpioError::Unsupported(_) | GpioError::WrongDirection { .. } => {
            ControlError::refused(e.to_string())
        }
        GpioError::Hardware(_) | GpioError::Released => ControlError::unavailable(e.to_string()),
    }
}

/// Listing a real chip makes kernel calls: it runs on a blocking thread.
pub async fn list(chips: std::sync::Arc<Chips>, host_id: &str) -> Result<GpioChips, ControlError> {
    let chips = tokio::task::spawn_blocking(move || chips.list())
        .await
        .map_err(|_| ControlError::unavailable("listing the chips failed"))?;
    Ok(GpioChips {
        host_id: host_id.to_string(),
        chips: chips
            .into_iter()
            .map(|c| GpioChip {
                name: c.name,
                label: c.label,
                simulated: c.simulated,
                lines: c
                    .lines
                    .into_iter()
                    .map(|l| GpioLineInfo {
                        offset: l.offset,
                        name: l.name,
                        direction: match l.direction {
                            Direction::Input => GpioDirection::In,
                            Direction::Output => GpioDirection::Out,
                        },
                        value: l.value.map(u8::from),
                        used_by: l.used_by,
                    })
                    .collect(),
            })
            .collect(),
    })
}

/// Reading a real line makes a kernel call: it runs on a blocking thread.
pub async fn get(
    chips: std::sync::Arc<Chips>,
    host_id: &str,
    req: GpioLine,
) -> Result<GpioValue, ControlError> {
    let (chip, line) = (req.chip.clone(), req.line);
    let high = tokio::task::spawn_blocking(move || chips.get(&chip, line))
        .await
        .map_err(|_| ControlError::unavailable("reading the line failed"))?
        .map_err(control_error)?;
    Ok(GpioValue {
        host_id: host_id.to_string(),
        chip: req.chip,
        line: req.line,
        value: u8::from(high),
    })
}

pub fn set(chips: &Chips, host_id: &str, req: GpioSet) -> Result<GpioValue, ControlError> {
    chips
        .set(&req.chip, req.line, req.value == 1)
        .map_err(control_error)?;
    Ok(GpioValue {
        host_id: host_id.to_string(),
        chip: req.chip,
        line: req.line,
        value: req.value,
    })
}
