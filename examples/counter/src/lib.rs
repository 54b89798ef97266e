//! `increment(key)`: opens the bucket its link provides (the empty identifier lets the
//! link's target config decide) and atomically adds 1 to `key`.

wit_bindgen::generate!({
    // The vendored wasi:keyvalue package first, then this component's world that uses it.
    path: ["../../interfaces/wit/keyvalue", "wit"],
    world: "trellis:examples/counter",
    generate_all,
});

use wasi::keyvalue::{atomics, store};

struct Counter;

impl Guest for Counter {
    fn increment(key: String) -> u64 {
        let bucket = match store::open("") {
            Ok(bucket) => bucket,
            Err(err) => panic!("counter: cannot open the key-value bucket: {err:?}"),
        };
        match atomics::increment(&bucket, &key, 1) {
            Ok(value) => value,
            Err(err) => panic!("counter: cannot increment {key:?}: {err:?}"),
        }
    }
}

export!(Counter);
