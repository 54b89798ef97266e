//! An HTTP handler for tests, by the last path segment:
//! - `echo`: streams the request body back, with its length in `x-body-length`;
//! - `crash`: traps;
//! - `spin`: loops until the host's time limit stops it;
//! - anything else: `hello from http-test` and the path.

use wasip2::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

struct HttpTest;

fn respond(out: ResponseOutparam, status: u16, headers: &[(&str, String)], body: &[u8]) {
    let fields = Fields::new();
    for (k, v) in headers {
        let _ = fields.append(&k.to_string(), &v.as_bytes().to_vec());
    }
    let response = OutgoingResponse::new(fields);
    let _ = response.set_status_code(status);
    let Ok(outgoing) = response.body() else { return };
    ResponseOutparam::set(out, Ok(response));
    if let Ok(stream) = outgoing.write() {
        for chunk in body.chunks(4096) {
            if stream.blocking_write_and_flush(chunk).is_err() {
                break;
            }
        }
    }
    let _ = OutgoingBody::finish(outgoing, None);
}

fn read_body(request: &IncomingRequest) -> Vec<u8> {
    let mut body = Vec::new();
    let Ok(incoming) = request.consume() else { return body };
    if let Ok(stream) = incoming.stream() {
        while let Ok(chunk) = stream.blocking_read(64 * 1024) {
            body.extend_from_slice(&chunk);
        }
    }
    body
}

impl wasip2::exports::http::incoming_handler::Guest for HttpTest {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        let last = path.split('?').next().unwrap_or("").rsplit('/').next().unwrap_or("").to_string();
        match last.as_str() {
            "echo" => {
                let body = read_body(&request);
                respond(out, 200, &[("x-body-length", body.len().to_string())], &body);
            }
            "crash" => panic!("http-test asked to crash"),
            "spin" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            _ => respond(out, 200, &[("content-type", "text/plain".into())], format!("hello from http-test at {path}\n").as_bytes()),
        }
    }
}

wasip2::http::proxy::export!(HttpTest);
