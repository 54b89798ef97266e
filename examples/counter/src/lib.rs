//! `increment(key)`: opens the bucket its link provides (the empty identifier lets the
//! link's target config decide) and atomically adds 1 to `key`.
//!
//! Over HTTP (`wasi:http/incoming-handler`): a request to `/.../KEY` increments `KEY` and
//! answers with the new value.

wit_bindgen::generate!({
    // The vendored wasi:keyvalue package first, then this component's world that uses it.
    path: ["../../interfaces/wit/keyvalue", "wit"],
    world: "trellis:examples/counter",
    generate_all,
});

use wasi::keyvalue::{atomics, store};
use wasip2::http::types::{Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam};

struct Counter;

fn increment_key(key: &str) -> Result<u64, String> {
    let bucket = store::open("").map_err(|e| format!("cannot open the key-value bucket: {e:?}"))?;
    atomics::increment(&bucket, key, 1).map_err(|e| format!("cannot increment {key:?}: {e:?}"))
}

impl Guest for Counter {
    fn increment(key: String) -> u64 {
        match increment_key(&key) {
            Ok(value) => value,
            Err(err) => panic!("counter: {err}"),
        }
    }
}

impl wasip2::exports::http::incoming_handler::Guest for Counter {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        let key = path.split('?').next().unwrap_or("").trim_end_matches('/').rsplit('/').next().unwrap_or("");
        let (status, body) = if key.is_empty() {
            (400, "usage: GET /counter/KEY\n".to_string())
        } else {
            match increment_key(key) {
                Ok(v) => (200, format!("{v}\n")),
                Err(e) => (500, format!("{e}\n")),
            }
        };
        let headers = Fields::from_list(&[("content-type".to_string(), b"text/plain".to_vec())]).unwrap_or_else(|_| Fields::new());
        let response = OutgoingResponse::new(headers);
        let _ = response.set_status_code(status);
        let Ok(outgoing) = response.body() else { return };
        ResponseOutparam::set(out, Ok(response));
        if let Ok(stream) = outgoing.write() {
            let _ = stream.blocking_write_and_flush(body.as_bytes());
        }
        let _ = OutgoingBody::finish(outgoing, None);
    }
}

export!(Counter);
wasip2::http::proxy::export!(Counter);
