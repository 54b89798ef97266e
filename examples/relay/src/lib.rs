//! Receives a message and sends it again under `out`: the other half of a messaging round
//! trip, for tests and benches. It names no broker: the links do.

wit_bindgen::generate!({
    path: ["../../interfaces/wit/messaging", "wit"],
    world: "trellis:examples/relay",
    generate_all,
});

use exports::trellis::messaging::incoming_handler::Guest;
use trellis::messaging::producer;
use trellis::messaging::types::{Error, Message};

struct Relay;

/// `in/x` → `out/x`, `in.x` → `out.x`, anything else → `out/` + topic.
fn reply_topic(topic: &str) -> String {
    for sep in ['/', '.'] {
        if let Some(rest) = topic.strip_prefix("in").and_then(|t| t.strip_prefix(sep)) {
            return format!("out{sep}{rest}");
        }
    }
    format!("out/{topic}")
}

impl Guest for Relay {
    fn handle(message: Message) -> Result<(), Error> {
        match message.data.as_slice() {
            b"trap" => panic!("relay: asked to trap"),
            b"fail" => return Err(Error::Other("relay: asked to fail".to_string())),
            _ => {}
        }
        producer::send(&Message {
            topic: reply_topic(&message.topic),
            ..message
        })
    }
}

export!(Relay);
