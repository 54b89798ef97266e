//! A `producer` client for providers' tests: calls `send` as a linked component's host does.

wit_bindgen_wrpc::generate!({
    inline: "
        package trellis:messaging-client;

        world client {
            import trellis:messaging/producer@0.1.0;
        }
    ",
    path: "../../interfaces/wit/messaging",
    world: "trellis:messaging-client/client",
    generate_all,
});

pub use trellis::messaging::producer::send;
pub use trellis::messaging::types::{Error, Message};

/// A message with a text payload and nothing else.
pub fn text(topic: &str, data: &str) -> Message {
    Message {
        topic: topic.to_string(),
        data: data.as_bytes().to_vec().into(),
        content_type: None,
        metadata: Vec::new(),
    }
}
