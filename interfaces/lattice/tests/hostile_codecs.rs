//! The decoders that read what a peer sent on the invocation path: the wRPC value codec
//! (`decode_results`, against any type a callee could describe), the HTTP request and response
//! frames that cross the lattice, a callee's error report and the headers of a call. Arbitrary
//! and mutated bytes never panic; refusals name where the input went wrong; a valid frame cut
//! anywhere is "incomplete", never "malformed".

use bytes::Bytes;
use proptest::prelude::*;
use trellis_lattice::http::{HttpRequest, HttpResponse};
use trellis_lattice::rpc::{headers, ErrorReport, IncomingCall, MAX_CALL_DEPTH};
use trellis_lattice::value::{decode_results, Case, Field, FunctionSignature, ValueType};

const CASES: u32 = 512;

fn value_type() -> impl Strategy<Value = ValueType> {
    let leaf = prop_oneof![
        Just(ValueType::Bool),
        Just(ValueType::U8),
        Just(ValueType::S8),
        Just(ValueType::U16),
        Just(ValueType::S16),
        Just(ValueType::U32),
        Just(ValueType::S32),
        Just(ValueType::U64),
        Just(ValueType::S64),
        Just(ValueType::F32),
        Just(ValueType::F64),
        Just(ValueType::Char),
        Just(ValueType::String),
        prop::collection::vec("[a-z]{1,6}", 0..70).prop_map(|names| ValueType::Flags { names }),
        prop::collection::vec("[a-z]{1,6}", 0..4).prop_map(|names| ValueType::Enum { names }),
        Just(ValueType::Unsupported {
            what: "stream".into()
        }),
    ];
    leaf.prop_recursive(5, 32, 4, |inner| {
        prop_oneof![
            inner.clone().prop_map(|t| ValueType::List {
                element: Box::new(t)
            }),
            inner
                .clone()
                .prop_map(|t| ValueType::Option { inner: Box::new(t) }),
            // Empty ones too: a hostile callee may describe types WIT cannot write.
            prop::collection::vec(inner.clone(), 0..4).prop_map(|types| ValueType::Tuple { types }),
            prop::collection::vec(("[a-z]{1,6}", inner.clone()), 0..4).prop_map(|fs| {
                ValueType::Record {
                    fields: fs
                        .into_iter()
                        .map(|(name, ty)| Field { name, ty })
                        .collect(),
                }
            }),
            prop::collection::vec(("[a-z]{1,6}", prop::option::of(inner.clone())), 0..4).prop_map(
                |cs| ValueType::Variant {
                    cases: cs.into_iter().map(|(name, ty)| Case { name, ty }).collect(),
                }
            ),
            (prop::option::of(inner.clone()), prop::option::of(inner)).prop_map(|(ok, err)| {
                ValueType::Result {
                    ok: ok.map(Box::new),
                    err: err.map(Box::new),
                }
            }),
        ]
    })
}

fn signature(results: Vec<ValueType>) -> FunctionSignature {
    FunctionSignature {
        instance: String::new(),
        name: "f".into(),
        params: vec![],
        results,
    }
}

fn request() -> impl Strategy<Value = HttpRequest> {
    (
        "[A-Z]{1,7}",
        ".{0,64}",
        ".{0,32}",
        prop::collection::vec((".{0,16}", prop::collection::vec(any::<u8>(), 0..32)), 0..6),
        prop::collection::vec(any::<u8>(), 0..2048),
    )
        .prop_map(|(method, path, authority, headers, body)| HttpRequest {
            method,
            path_with_query: path,
            authority,
            headers: headers
                .into_iter()
                .map(|(k, v)| (k, Bytes::from(v)))
                .collect(),
            body: body.into(),
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn any_bytes_against_any_type_decode_or_are_refused_with_a_path(
        results in prop::collection::vec(value_type(), 0..3),
        bytes in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        if let Err(e) = decode_results(&signature(results), &bytes) {
            prop_assert!(!e.path.is_empty() && !e.message.is_empty(), "{e:?}");
            prop_assert!(e.to_string().len() < 4096, "{e}");
        }
    }

    #[test]
    fn a_length_prefix_beyond_the_input_is_refused_before_anything_is_built(
        element in value_type(),
        claimed in 1u32..,
        tail in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut bytes = Vec::new();
        let mut n = claimed;
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 { bytes.push(b); break; }
            bytes.push(b | 0x80);
        }
        bytes.extend_from_slice(&tail);
        let ty = ValueType::List { element: Box::new(element) };
        // Either a short list that fits in `tail`, or a refusal; never 4 billion elements.
        if let Ok(v) = decode_results(&signature(vec![ty]), &bytes) {
            prop_assert!(v.as_array().is_some_and(|a| a.len() <= 1 << 16));
        }
    }

    #[test]
    fn http_frames_of_arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..1024)) {
        let bytes = Bytes::from(bytes);
        let _ = HttpRequest::decode_partial(&bytes);
        let _ = HttpResponse::decode(&bytes);
    }

    #[test]
    fn a_request_cut_anywhere_is_incomplete_and_whole_it_round_trips(
        req in request(),
        cut in any::<prop::sample::Index>(),
        flip in any::<(prop::sample::Index, u8)>(),
    ) {
        let encoded = req.encode();
        prop_assert_eq!(HttpRequest::decode(&encoded).ok(), Some(req.clone()));
        let at = cut.index(encoded.len());
        prop_assert!(matches!(HttpRequest::decode_partial(&encoded.slice(..at)), Ok(None)));
        // One byte changed: decoded, incomplete or refused, never a panic.
        let mut mutated = encoded.to_vec();
        let i = flip.0.index(mutated.len());
        mutated[i] ^= flip.1 | 1;
        let _ = HttpRequest::decode_partial(&Bytes::from(mutated));
    }

    #[test]
    fn error_reports_and_call_headers_of_any_content_are_read_safely(
        report in prop::collection::vec(any::<u8>(), 0..512),
        depth in "[ -~]{0,24}",
        budget in "[ -~]{0,24}",
    ) {
        let _ = serde_json::from_slice::<ErrorReport>(&report);
        let mut h = async_nats::HeaderMap::new();
        h.insert(headers::DEPTH, depth.as_str());
        h.insert(headers::BUDGET, budget.as_str());
        let incoming = IncomingCall::from_headers(Some(&h));
        // A depth that is not a number is the deepest: it cannot buy a longer chain.
        match depth.trim().parse::<u32>() {
            Ok(d) => prop_assert_eq!(incoming.depth, d),
            Err(_) => prop_assert_eq!(incoming.depth, MAX_CALL_DEPTH),
        }
    }
}

#[test]
fn a_four_gib_http_length_is_refused_at_once_not_awaited() {
    // method "GET", then a body length of 0xffff_ffff: the limit refuses it outright, so the
    // host neither waits for nor buffers four gigabytes.
    let mut frame = vec![3, b'G', b'E', b'T', 1, b'/', 0, 0];
    frame.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    let err = HttpRequest::decode_partial(&Bytes::from(frame)).unwrap_err();
    assert!(!err.is_incomplete());
    assert!(err.to_string().contains("above the limit"), "{err}");
}

#[test]
fn a_list_of_four_billion_empty_values_is_refused() {
    let ty = ValueType::List {
        element: Box::new(ValueType::Tuple { types: vec![] }),
    };
    let err = decode_results(&signature(vec![ty]), &[0xff, 0xff, 0xff, 0xff, 0x0f]).unwrap_err();
    assert!(
        err.message.contains("a list of 4294967295 empty values"),
        "{err}"
    );
}
