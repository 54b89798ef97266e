//! An LED driven by messages: `on` / `off` (surrounding whitespace ignored).

wit_bindgen::generate!({
    path: [
        "../../interfaces/wit/gpio",
        "../../interfaces/wit/config",
        "../../interfaces/wit/messaging",
        "wit",
    ],
    world: "trellis:examples/led",
    generate_all,
});

use exports::trellis::messaging::incoming_handler::Guest;
use trellis::messaging::types::{Error, Message};
use wasi::config::store;
use wasi::gpio::digital::{DigitalFlag, DigitalOutPin};

struct Led;

impl Guest for Led {
    fn handle(message: Message) -> Result<(), Error> {
        let on = match std::str::from_utf8(&message.data).map(str::trim) {
            Ok("on") => true,
            Ok("off") => false,
            _ => return Err(Error::Other("led: expected `on` or `off`".to_string())),
        };
        let label = store::get("pin")
            .ok()
            .flatten()
            .unwrap_or_else(|| "led".to_string());
        let pin = DigitalOutPin::get(&label, &[DigitalFlag::OUTPUT])
            .map_err(|e| Error::Other(format!("led: cannot drive the pin: {e:?}")))?;
        let set = if on {
            pin.set_active()
        } else {
            pin.set_inactive()
        };
        set.map_err(|e| Error::Other(format!("led: cannot drive the pin: {e:?}")))
    }
}

export!(Led);
