//! GPIO on this host: its chips (`trellis-gpio`), the pins each component is granted, and
//! `wasi:gpio` served in-process to components (a component using GPIO must run on the host
//! that has the chip, so this never crosses the lattice).
//!
//! - [`pins`]: a component's grant and the lines it holds.
//! - [`wasi`]: the `wasi:gpio@0.2.0` bindings.

pub mod edges;
pub mod flags;
pub mod follow;
pub mod pins;
pub mod wasi;

pub use pins::ComponentPins;
pub use wasi::{GpioCtx, GpioView};
