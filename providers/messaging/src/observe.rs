//! What the messaging providers export as metrics: messages handed to components
//! (`messaging.client.consumed.messages`, with `error.type` when the component failed),
//! messages sent (`messaging.client.sent.messages`) and messages dropped
//! (`trellis.messaging.dropped`). Attributes stay bounded: system, component, link; never the
//! topic.

use std::sync::OnceLock;

use opentelemetry::metrics::Counter;
use opentelemetry::KeyValue;

use crate::deliver::Target;

struct Instruments {
    consumed: Counter<u64>,
    sent: Counter<u64>,
    dropped: Counter<u64>,
}

static INSTRUMENTS: OnceLock<Instruments> = OnceLock::new();

fn instruments() -> Option<&'static Instruments> {
    if !trellis_telemetry::enabled() {
        return None;
    }
    Some(INSTRUMENTS.get_or_init(|| {
        let meter = opentelemetry::global::meter("trellis-messaging");
        Instruments {
            consumed: meter
                .u64_counter("messaging.client.consumed.messages")
                .with_unit("{message}")
                .with_description("Messages handed to a subscribed component")
                .build(),
            sent: meter
                .u64_counter("messaging.client.sent.messages")
                .with_unit("{message}")
                .with_description("Messages a component sent")
                .build(),
            dropped: meter
                .u64_counter("trellis.messaging.dropped")
                .with_unit("{message}")
                .with_description(
                    "Messages dropped: the component's queue was full or its link went away",
                )
                .build(),
        }
    }))
}

fn attrs(target: &Target) -> Vec<KeyValue> {
    vec![
        KeyValue::new("messaging.system", target.system),
        KeyValue::new("trellis.component.id", target.component().to_string()),
        KeyValue::new("trellis.link.name", target.link_name.to_string()),
    ]
}

pub(crate) fn processed(target: &Target, error: Option<&'static str>) {
    if let Some(i) = instruments() {
        let mut a = attrs(target);
        if let Some(kind) = error {
            a.push(KeyValue::new("error.type", kind));
        }
        i.consumed.add(1, &a);
    }
}

pub(crate) fn dropped(target: &Target) {
    if let Some(i) = instruments() {
        i.dropped.add(1, &attrs(target));
    }
}

pub(crate) fn sent(system: &'static str, source: &str, error: Option<&'static str>) {
    if let Some(i) = instruments() {
        let mut a = vec![
            KeyValue::new("messaging.system", system),
            KeyValue::new("trellis.component.id", source.to_string()),
        ];
        if let Some(kind) = error {
            a.push(KeyValue::new("error.type", kind));
        }
        i.sent.add(1, &a);
    }
}
