//! A button: every rising edge on the pin labelled `button` is one `pressed` message. The
//! edge's timestamp travels as metadata `edge-ns`, whether the button is still held as
//! `held`.

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
        // Every rise is a press (debouncing is the line's business); whether the button is
        // still held by the time the press is handled travels along.
        let held = DigitalInPin::get(&event.pin, &[DigitalFlag::INPUT])
            .and_then(|pin| pin.read())
            .map(|state| state == PinState::Active);
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
            metadata: vec![
                ("edge-ns".to_string(), event.timestamp_ns.to_string()),
                ("held".to_string(), matches!(held, Ok(true)).to_string()),
            ],
        };
        if let Err(e) = producer::send(&message) {
            panic!("button: cannot send: {e:?}");
        }
    }
}

export!(Button);
