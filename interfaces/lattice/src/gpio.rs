//! GPIO over the control interface: `trellis gpio list|get|set HOST`, answered by that host
//! from its chips (simulated ones' inputs can be driven from outside).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Lines a chip may have at most (what a request may name).
pub const MAX_LINES: u32 = 1024;

/// Chip names: letters, digits, `-`, `_`, at most 32 (`gpiochip0`, `sim0`).
pub fn validate_chip_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 32 {
        return Err(Error::invalid(
            "chip name",
            name,
            "must be 1 to 32 characters",
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(Error::invalid(
            "chip name",
            name,
            "may hold only letters, digits, `-` and `_`",
        ));
    }
    Ok(())
}

/// Checks a line number.
pub fn validate_line(line: u32) -> Result<()> {
    if line >= MAX_LINES {
        return Err(Error::invalid(
            "line",
            &line.to_string(),
            format!("must be below {MAX_LINES}"),
        ));
    }
    Ok(())
}

/// One line of one chip: `gpio.get`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpioLine {
    pub chip: String,
    pub line: u32,
}

/// Drives a simulated input: `gpio.set`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpioSet {
    pub chip: String,
    pub line: u32,
    /// 0 or 1: the physical level.
    pub value: u8,
}

/// A line's physical level, as `gpio.get` and `gpio.set` answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpioValue {
    pub host_id: String,
    pub chip: String,
    pub line: u32,
    pub value: u8,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GpioDirection {
    In,
    Out,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpioLineInfo {
    pub offset: u32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    pub direction: GpioDirection,
    /// The physical level, where it can be read without disturbing the line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used_by: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpioChip {
    pub name: String,
    pub label: String,
    pub simulated: bool,
    pub lines: Vec<GpioLineInfo>,
}

/// What `gpio.list` answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpioChips {
    pub host_id: String,
    pub chips: Vec<GpioChip>,
}
