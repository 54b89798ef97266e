//! Calls itself through a link in a loop: linked to itself, each invocation makes another
//! through the lattice, without end. The host must end the chain with a clear error rather
//! than deadlock or hold its instances forever.

wit_bindgen::generate!({ path: "wit", world: "ouroboros" });

use exports::trellis::ouroboros::again::Guest;
use trellis::ouroboros::again;

struct Ouroboros;

impl Guest for Ouroboros {
    fn run(depth: u32) -> u32 {
        again::run(depth.wrapping_add(1)).wrapping_add(1)
    }
}

export!(Ouroboros);
