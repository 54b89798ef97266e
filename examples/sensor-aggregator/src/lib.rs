//! Readings in, one aggregate per reading out: the window the reading falls in is updated in
//! key-value storage and its new aggregate published, so a consumer always holds the latest
//! figures of every window without waiting for windows to close.

wit_bindgen::generate!({
    path: [
        "../../interfaces/wit/config",
        "../../interfaces/wit/keyvalue",
        "../../interfaces/wit/messaging",
        "wit",
    ],
    world: "trellis:examples/sensor-aggregator",
    generate_all,
});

use exports::trellis::messaging::incoming_handler::Guest;
use serde_json::{json, Value};
use trellis::messaging::producer;
use trellis::messaging::types::{Error, Message};
use wasi::config::store as config;
use wasi::keyvalue::store;

struct SensorAggregator;

const DEFAULT_WINDOW_MS: u64 = 10_000;
const DEFAULT_AGGREGATES_TOPIC: &str = "sensors.aggregates";

fn setting(key: &str) -> Option<String> {
    config::get(key).ok().flatten()
}

fn fail(context: &str, detail: impl std::fmt::Display) -> Error {
    Error::Other(format!("sensor-aggregator: {context}: {detail}"))
}

/// The running figures of one window, as kept under `window/{start}`.
struct Window {
    start_ms: u64,
    window_ms: u64,
    count: u64,
    min: i64,
    max: i64,
    sum: i64,
}

impl Window {
    fn first(start_ms: u64, window_ms: u64, value: i64) -> Self {
        Window {
            start_ms,
            window_ms,
            count: 1,
            min: value,
            max: value,
            sum: value,
        }
    }

    fn from_json(bytes: &[u8]) -> Result<Self, String> {
        let v: Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        let unsigned = |name: &str| {
            v.get(name)
                .and_then(Value::as_u64)
                .ok_or_else(|| format!("no unsigned `{name}`"))
        };
        let signed = |name: &str| {
            v.get(name)
                .and_then(Value::as_i64)
                .ok_or_else(|| format!("no integer `{name}`"))
        };
        Ok(Window {
            start_ms: unsigned("window_start_ms")?,
            window_ms: unsigned("window_ms")?,
            count: unsigned("count")?,
            min: signed("min")?,
            max: signed("max")?,
            sum: signed("sum")?,
        })
    }

    fn to_json(&self) -> Value {
        json!({
            "window_start_ms": self.start_ms,
            "window_ms": self.window_ms,
            "count": self.count,
            "min": self.min,
            "max": self.max,
            "sum": self.sum,
        })
    }

    /// Checked, so that a hostile stream of huge values is refused rather than wrapped into
    /// plausible-looking figures.
    fn add(&mut self, value: i64) -> Result<(), String> {
        self.sum = self.sum.checked_add(value).ok_or("sum overflows")?;
        self.count = self.count.checked_add(1).ok_or("count overflows")?;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        Ok(())
    }

    fn aggregate(&self) -> Value {
        json!({
            "window_start_ms": self.start_ms,
            "window_ms": self.window_ms,
            "count": self.count,
            "min": self.min,
            "max": self.max,
            "mean": self.sum as f64 / self.count as f64,
        })
    }
}

/// `(value, ts_ms)` of a reading; the other fields are carried by the sender for others.
fn parse_reading(data: &[u8]) -> Result<(i64, u64), String> {
    let v: Value = serde_json::from_slice(data).map_err(|e| format!("not JSON: {e}"))?;
    let value = v
        .get("value")
        .and_then(Value::as_i64)
        .ok_or("no integer `value`")?;
    let ts_ms = v
        .get("ts_ms")
        .and_then(Value::as_u64)
        .ok_or("no `ts_ms` (milliseconds since the epoch)")?;
    Ok((value, ts_ms))
}

fn window_ms() -> Result<u64, Error> {
    match setting("window-ms") {
        None => Ok(DEFAULT_WINDOW_MS),
        Some(text) => match text.trim().parse::<u64>() {
            Ok(ms) if ms > 0 => Ok(ms),
            _ => Err(fail(
                "config window-ms",
                format!("{text:?} is not a positive integer"),
            )),
        },
    }
}

impl Guest for SensorAggregator {
    fn handle(message: Message) -> Result<(), Error> {
        let (value, ts_ms) =
            parse_reading(&message.data).map_err(|e| fail("invalid reading", e))?;
        let window_ms = window_ms()?;
        let start_ms = ts_ms - ts_ms % window_ms;
        let key = format!("window/{start_ms}");

        // An empty identifier lets the link's target config name the bucket.
        let bucket = store::open(&setting("bucket").unwrap_or_default())
            .map_err(|e| fail("cannot open the bucket", format!("{e:?}")))?;
        // Read-modify-write without compare-and-set: one topic's messages are delivered one
        // after the other, so on one gateway no other update of the window runs meanwhile.
        let stored = bucket
            .get(&key)
            .map_err(|e| fail(&format!("cannot read {key}"), format!("{e:?}")))?;
        let window = match stored {
            Some(bytes) => {
                let mut window = Window::from_json(&bytes)
                    .map_err(|e| fail(&format!("stored {key} is unreadable"), e))?;
                // A window kept under another `window-ms` measured another span: mixing
                // the two would report figures of neither, so the new size starts over.
                if window.window_ms == window_ms && window.start_ms == start_ms {
                    window.add(value).map_err(|e| fail(&key, e))?;
                    window
                } else {
                    Window::first(start_ms, window_ms, value)
                }
            }
            None => Window::first(start_ms, window_ms, value),
        };
        bucket
            .set(&key, window.to_json().to_string().as_bytes())
            .map_err(|e| fail(&format!("cannot write {key}"), format!("{e:?}")))?;

        producer::send(&Message {
            topic: setting("aggregates-topic")
                .unwrap_or_else(|| DEFAULT_AGGREGATES_TOPIC.to_string()),
            data: window.aggregate().to_string().into_bytes(),
            content_type: Some("application/json".to_string()),
            metadata: Vec::new(),
        })
    }
}

export!(SensorAggregator);
