//! Traps on every call: the host must report it and keep serving.

wit_bindgen::generate!({ path: "../hostile-wit", world: "hostile" });

struct Crash;

impl Guest for Crash {
    fn run() {
        panic!("crash component asked to crash");
    }
}

export!(Crash);
