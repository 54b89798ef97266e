//! Reads its configuration through `wasi:config/store`, which the host answers from the named
//! configs the component was started with.

wit_bindgen::generate!({
    path: ["../../interfaces/wit/config", "wit"],
    world: "trellis:examples/settings",
    generate_all,
});

use wasi::config::store;

struct Settings;

impl Guest for Settings {
    fn setting(key: String) -> Option<String> {
        match store::get(&key) {
            Ok(value) => value,
            Err(err) => panic!("settings: cannot read {key:?}: {err:?}"),
        }
    }

    fn settings() -> Vec<String> {
        let mut all = match store::get_all() {
            Ok(all) => all,
            Err(err) => panic!("settings: cannot read the configuration: {err:?}"),
        };
        all.sort();
        all.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
    }
}

export!(Settings);
