//! A simulated 4-bit parallel sensor: the producer sets the data lines `d0`..`d3`, then
//! raises `strobe`; each rise is one reading, published as JSON.

wit_bindgen::generate!({
    path: [
        "../../interfaces/wit/gpio",
        "../../interfaces/wit/config",
        "../../interfaces/wit/logging",
        "../../interfaces/wit/messaging",
        "../../interfaces/wit/gpio-edges",
        "wit",
    ],
    world: "trellis:examples/sensor-reader",
    generate_all,
});

use exports::trellis::gpio::edge_handler::{Edge, EdgeEvent, Guest};
use trellis::messaging::producer;
use trellis::messaging::types::Message;
use wasi::config::store;
use wasi::gpio::digital::{DigitalFlag, DigitalInPin, PinState};
use wasi::logging::logging::{log, Level};

struct SensorReader;

const STROBE: &str = "strobe";
/// Least significant bit first: `d0` is worth 1, `d3` 8.
const DATA_PINS: [&str; 4] = ["d0", "d1", "d2", "d3"];
const DEFAULT_TOPIC: &str = "sensors.readings";
const DEFAULT_SENSOR: &str = "sensor";
const LOG_CONTEXT: &str = "sensor-reader";

fn setting(key: &str, default: &str) -> String {
    store::get(key)
        .ok()
        .flatten()
        .unwrap_or_else(|| default.to_string())
}

/// The value on the data lines, or which line could not be read. Active-high is asked for
/// explicitly so that "active" means a high level whatever the line's default.
fn read_value() -> Result<u8, String> {
    let mut value = 0u8;
    for (bit, label) in DATA_PINS.iter().enumerate() {
        let state = DigitalInPin::get(label, &[DigitalFlag::INPUT, DigitalFlag::ACTIVE_HIGH])
            .and_then(|pin| pin.read())
            .map_err(|e| format!("cannot read pin {label}: {e:?}"))?;
        if state == PinState::Active {
            value |= 1 << bit;
        }
    }
    Ok(value)
}

fn wall_clock_ms() -> u64 {
    let now = wasip2::clocks::wall_clock::now();
    now.seconds
        .saturating_mul(1000)
        .saturating_add(u64::from(now.nanoseconds / 1_000_000))
}

impl Guest for SensorReader {
    fn on_edge(event: EdgeEvent) {
        // The data lines are watched too (every granted input is), but only a rising strobe
        // says they hold a complete value.
        if event.pin != STROBE || event.edge != Edge::Rising {
            return;
        }
        // A reading with a line missing would be a wrong number, not a partial one: better none.
        let value = match read_value() {
            Ok(value) => value,
            Err(e) => {
                log(
                    Level::Error,
                    LOG_CONTEXT,
                    &format!("no reading at strobe {}: {e}", event.timestamp_ns),
                );
                return;
            }
        };
        let reading = serde_json::json!({
            "sensor": setting("sensor", DEFAULT_SENSOR),
            "value": value,
            "ts_ms": wall_clock_ms(),
            "edge_ns": event.timestamp_ns,
        });
        let message = Message {
            topic: setting("topic", DEFAULT_TOPIC),
            data: reading.to_string().into_bytes(),
            content_type: Some("application/json".to_string()),
            metadata: Vec::new(),
        };
        // on-edge has no error to return, and trapping would only lose this instance (each
        // edge gets a fresh one): the log is where a lost reading can be seen.
        if let Err(e) = producer::send(&message) {
            log(
                Level::Error,
                LOG_CONTEXT,
                &format!("cannot send reading {value} to {}: {e:?}", message.topic),
            );
        }
    }
}

export!(SensorReader);
