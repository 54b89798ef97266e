//! Allocates until memory runs out: the host's memory cap must stop it.

wit_bindgen::generate!({ path: "../hostile-wit", world: "hostile" });

struct Hog;

impl Guest for Hog {
    fn run() {
        let mut held: Vec<Vec<u8>> = Vec::new();
        loop {
            // Fill each block so the memory is really used, not just reserved.
            held.push(std::hint::black_box(vec![0xa5; 1 << 20]));
        }
    }
}

export!(Hog);
