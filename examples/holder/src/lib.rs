//! Holds its instance forever: it waits in a host call (a clock that never fires), where no
//! epoch check runs, so only the host's watchdog can end it.

wit_bindgen::generate!({ path: "../hostile-wit", world: "hostile" });

struct Holder;

impl Guest for Holder {
    fn run() {
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
}

export!(Holder);
