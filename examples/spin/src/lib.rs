//! Loops forever: the host's execution-time limit must stop it.

wit_bindgen::generate!({ path: "../hostile-wit", world: "hostile" });

struct Spin;

impl Guest for Spin {
    fn run() {
        let mut n: u64 = 0;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }
}

export!(Spin);
