//! Set-ups of the GPIO tests: messages for the `led` component's `handle`, as `trellis call`
//! takes them.

/// The JSON argument of `incoming-handler.handle` for a text message.
pub fn message_json(topic: &str, text: &str) -> serde_json::Value {
    serde_json::json!({
        "topic": topic,
        "data": text.as_bytes(),
        "content-type": null,
        "metadata": [],
    })
}
