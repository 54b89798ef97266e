//! The GPIO a host serves to its components, independent of WebAssembly:
//!
//! - [`sim`]: simulated chips (`trellis-host --gpio-sim sim0=8`), whose inputs are driven
//!   from outside (`trellis gpio set`).
//! - [`cdev`]: the Linux GPIO character device (uAPI v2, `/dev/gpiochip*`, through
//!   `gpiocdev`): line names from the chip, bias, active-low, debounce, edge events.
//! - [`chips`]: every chip of the host by name, who holds which line ([`Chips::claim`]),
//!   chips appearing and going.
//! - [`grants`]: which pins a component may use (`pins=button:sim0:0,led:sim0:1`).
//!
//! Values are logical (active or not) at the line handles, physical (high or low) at the
//! chip level (`trellis gpio get/set`).

pub mod cdev;
pub mod chips;
pub mod grants;
mod line;
pub mod sim;

pub use chips::Chips;
pub use grants::{parse_grants, Grant};
pub use line::*;
