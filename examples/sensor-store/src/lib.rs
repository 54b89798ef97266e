//! The cloud end of the sensors app: every aggregate received is the window's latest figures
//! and replaces what was kept for it; `GET /sensors` shows the newest windows.

wit_bindgen::generate!({
    path: [
        "../../interfaces/wit/config",
        "../../interfaces/wit/keyvalue",
        "../../interfaces/wit/logging",
        "../../interfaces/wit/messaging",
        "wit",
    ],
    world: "trellis:examples/sensor-store",
    generate_all,
});

use exports::trellis::messaging::incoming_handler::Guest as MessageHandler;
use serde_json::{json, Value};
use trellis::messaging::types::{Error, Message};
use wasi::config::store as config;
use wasi::keyvalue::store::{self, Bucket};
use wasi::logging::logging::{log, Level};
use wasip2::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

struct SensorStore;

const PREFIX: &str = "sensors/";
const NEWEST: usize = 20;
/// Keys are compared as text, so every start must have the same number of digits: 16 holds
/// any millisecond timestamp for the next three hundred thousand years.
const KEY_DIGITS: usize = 16;
const MAX_START_MS: u64 = 10u64.pow(KEY_DIGITS as u32) - 1;
/// `blocking-write-and-flush` takes at most 4096 bytes per call.
const WRITE_CHUNK: usize = 4096;
const LOG_CONTEXT: &str = "sensor-store";

fn open_bucket() -> Result<Bucket, String> {
    // An empty identifier lets the link's target config name the bucket.
    let name = config::get("bucket").ok().flatten().unwrap_or_default();
    store::open(&name).map_err(|e| format!("cannot open the bucket: {e:?}"))
}

fn window_key(aggregate: &[u8]) -> Result<String, String> {
    let v: Value = serde_json::from_slice(aggregate).map_err(|e| format!("not JSON: {e}"))?;
    let start = v
        .get("window_start_ms")
        .and_then(Value::as_u64)
        .ok_or("no unsigned integer `window_start_ms`")?;
    if start > MAX_START_MS {
        return Err(format!(
            "window_start_ms {start} has more than {KEY_DIGITS} digits"
        ));
    }
    Ok(format!("{PREFIX}{start:0width$}", width = KEY_DIGITS))
}

impl MessageHandler for SensorStore {
    fn handle(message: Message) -> Result<(), Error> {
        let fail = |e: String| Error::Other(format!("sensor-store: {e}"));
        let key = window_key(&message.data).map_err(|e| fail(format!("invalid aggregate: {e}")))?;
        let bucket = open_bucket().map_err(fail)?;
        bucket
            .set(&key, &message.data)
            .map_err(|e| fail(format!("cannot write {key}: {e:?}")))
    }
}

/// Every key of the bucket under `sensors/`, in key (so time) order.
fn window_keys(bucket: &Bucket) -> Result<Vec<String>, String> {
    let mut keys = Vec::new();
    let mut cursor = None;
    loop {
        let page = bucket
            .list_keys(cursor)
            .map_err(|e| format!("cannot list keys: {e:?}"))?;
        keys.extend(page.keys.into_iter().filter(|k| k.starts_with(PREFIX)));
        match page.cursor {
            // A cursor that does not move would page forever.
            Some(next) if Some(next) != cursor => cursor = Some(next),
            _ => break,
        }
    }
    // The interface promises no order.
    keys.sort_unstable();
    Ok(keys)
}

fn newest_windows() -> Result<Value, String> {
    let bucket = open_bucket()?;
    let keys = window_keys(&bucket)?;
    let mut windows = Vec::with_capacity(NEWEST);
    for key in keys.iter().rev().take(NEWEST) {
        match bucket.get(key) {
            Ok(Some(bytes)) => match serde_json::from_slice::<Value>(&bytes) {
                Ok(window) => windows.push(window),
                // One damaged entry should not hide every other window.
                Err(e) => log(
                    Level::Warn,
                    LOG_CONTEXT,
                    &format!("skipping {key}: not JSON: {e}"),
                ),
            },
            // Deleted since it was listed.
            Ok(None) => {}
            Err(e) => return Err(format!("cannot read {key}: {e:?}")),
        }
    }
    Ok(json!({ "windows": windows }))
}

fn respond(out: ResponseOutparam, status: u16, content_type: &str, body: &[u8]) {
    let headers =
        Fields::from_list(&[("content-type".to_string(), content_type.as_bytes().to_vec())])
            .unwrap_or_else(|_| Fields::new());
    let response = OutgoingResponse::new(headers);
    let _ = response.set_status_code(status);
    let Ok(outgoing) = response.body() else {
        return;
    };
    ResponseOutparam::set(out, Ok(response));
    if let Ok(stream) = outgoing.write() {
        for chunk in body.chunks(WRITE_CHUNK) {
            if stream.blocking_write_and_flush(chunk).is_err() {
                // The client went away; the rest has nowhere to go.
                break;
            }
        }
    }
    let _ = OutgoingBody::finish(outgoing, None);
}

impl wasip2::exports::http::incoming_handler::Guest for SensorStore {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let path_and_query = request.path_with_query().unwrap_or_default();
        let path = path_and_query.split('?').next().unwrap_or("");
        if path.trim_end_matches('/') != "/sensors" {
            return respond(out, 404, "text/plain", b"not found\n");
        }
        if !matches!(request.method(), Method::Get) {
            return respond(out, 405, "text/plain", b"only GET\n");
        }
        match newest_windows() {
            Ok(body) => respond(out, 200, "application/json", body.to_string().as_bytes()),
            Err(e) => {
                log(Level::Error, LOG_CONTEXT, &e);
                respond(out, 500, "text/plain", format!("{e}\n").as_bytes())
            }
        }
    }
}

export!(SensorStore);
wasip2::http::proxy::export!(SensorStore);
