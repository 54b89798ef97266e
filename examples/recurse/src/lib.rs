//! Recurses without end: the guest's call stack overflows, which must be a trap for this
//! invocation only.

wit_bindgen::generate!({ path: "../hostile-wit", world: "hostile" });

struct Recurse;

/// Not a tail call (the addition after it), and opaque to the optimiser, so every level
/// takes a real frame.
#[inline(never)]
fn down(n: u64) -> u64 {
    // Never true: only there so the compiler sees a way out.
    if n == u64::MAX {
        return 0;
    }
    std::hint::black_box(down(std::hint::black_box(n + 1))).wrapping_add(n)
}

impl Guest for Recurse {
    fn run() {
        std::hint::black_box(down(0));
    }
}

export!(Recurse);
