//! A button: a rising edge on the pin labelled `button`, still high when read, is one
//! `pressed` message. The edge's kernel timestamp travels as metadata `edge-ns`.

wit_bindgen::generate!({
    path: [
        "../../interfaces/wit/gpio",
        "../../interfaces/wit/config",
        "../../interfaces/wit/messaging",
        "../../interfaces/wit/gpio-edges",
        "wit",
    ],
    world: "trellis:examples/button",
    generate_all,
});

use exports::trellis::gpio::edge_handler::{Edge, EdgeEvent, Guest};
use trellis::messaging::producer;
use trellis::messaging::types::Message;
use wasi::config::store;
use wasi::gpio::digital::{DigitalFlag, DigitalInPin, PinState};

struct Button;

const DEFAULT_TOPIC: &str = "trellis/demo/button";

impl Guest for Button {
    fn on_edge(event: EdgeEvent) {
        if event.pin != "button" || event.edge != Edge::Rising {
            return;
        }
        // A bounce that is already over is no press.
        let pin = match DigitalInPin::get(&event.pin, &[DigitalFlag::INPUT]) {
            Ok(pin) => pin,
            Err(e) => panic!("button: cannot read the pin: {e:?}"),
        };
        if !matches!(pin.read(), Ok(PinState::Active)) {
            return;
        }
        let setting = |key: &str, default: &str| {
            store::get(key)
                .ok()
                .flatten()
                .unwrap_or_else(|| default.to_string())
        };
        let message = Message {
            topic: setting("topic", DEFAULT_TOPIC),
            data: setting("message", "pressed").into_bytes(),
            content_type: Some("text/plain".to_string()),
            metadata: vec![("edge-ns".to_string(), event.timestamp_ns.to_string())],
        };
        if let Err(e) = producer::send(&message) {
            panic!("button: cannot send: {e:?}");
        }
    }
}

export!(Button);
