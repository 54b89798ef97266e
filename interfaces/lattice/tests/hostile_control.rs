//! Control requests as a hostile client could send them, checked against the one parser every
//! server uses (`ControlRequest::parse`): arbitrary bytes on every subject, valid requests with
//! one field replaced by something hostile, unknown fields, arbitrary subjects. The parser
//! never panics; every refusal is `invalid`, names the request, and repeats at most a short
//! beginning of what was sent; whatever it accepts holds only ids that are one subject token.

use proptest::prelude::*;
use serde_json::{json, Value};
use trellis_lattice::server::{ControlRequest, HostRequest, StateRequest};
use trellis_lattice::{ErrorKind, Subjects};

/// Cases per property (each runs in well under a millisecond).
const CASES: u32 = 512;
/// The longest refusal any of these inputs may produce.
const MAX_MESSAGE: usize = 2048;

const HOST: &str = "NAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

/// Every request's subject with a valid body for it.
fn valid_requests(s: &Subjects) -> Vec<(String, Value)> {
    let key = json!({"source_id": "a", "wit_namespace": "wasi", "wit_package": "keyvalue", "name": "default"});
    vec![
        (s.host_ping(), json!({})),
        (s.host_get(HOST), json!({"page": 1})),
        (s.host_stats(HOST), json!({})),
        (s.host_stop(HOST), json!({"timeout_ms": 1000})),
        (s.label_put(HOST), json!({"key": "zone", "value": "a"})),
        (s.label_del(HOST), json!({"key": "zone"})),
        (
            s.component_scale(HOST),
            json!({"component_id": "c", "image": "/c.wasm", "replicas": 2, "config": ["x"],
                   "max_memory_bytes": 1048576, "timeout_ms": 100, "annotations": {"k": "v"}}),
        ),
        (
            s.component_auction(),
            json!({"component_id": "c", "image": "/c.wasm", "constraints": {"zone": "a"}}),
        ),
        (s.component_describe("c"), json!({"component_id": "c"})),
        (
            s.provider_start(HOST),
            json!({"provider_id": "p", "image": "builtin://keyvalue", "config": ["x"]}),
        ),
        (s.provider_stop(HOST), json!({"provider_id": "p"})),
        (s.gpio_list(HOST), json!({})),
        (s.gpio_get(HOST), json!({"chip": "gpiochip0", "line": 3})),
        (
            s.gpio_set(HOST),
            json!({"chip": "gpiochip0", "line": 3, "value": 1}),
        ),
        (
            s.link_put(),
            json!({"link": {"source_id": "a", "target_id": "b", "wit_namespace": "wasi",
                   "wit_package": "keyvalue", "interfaces": ["store"]}}),
        ),
        (
            s.link_retarget(),
            json!({"key": key, "target_id": "b", "target_config": ["x"]}),
        ),
        (s.link_del(), json!({ "key": key })),
        (s.config_put(), json!({"name": "x", "values": {"k": "v"}})),
        (s.config_del(), json!({"name": "x"})),
        (
            s.app("put"),
            json!({"source_name": "app.yaml", "manifest": "kind: Application"}),
        ),
        (
            s.app("validate"),
            json!({"source_name": "app.yaml", "manifest": "{}"}),
        ),
        (s.app("deploy"), json!({"name": "app", "version": "v1"})),
        (s.app("rollback"), json!({"name": "app"})),
        (s.app("undeploy"), json!({"name": "app"})),
        (s.app("delete"), json!({"name": "app"})),
        (s.app("list"), json!({})),
        (s.app("status"), json!({"name": "app"})),
        (s.app("history"), json!({"name": "app"})),
        (s.app("get"), json!({"name": "app", "version": "v1"})),
    ]
}

/// Hostile JSON values: huge and negative numbers, long strings with NUL and control
/// characters, deep nesting, wrong types.
fn hostile_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        Just(json!(u64::MAX)),
        Just(json!(-1)),
        Just(json!(1e300)),
        ".{0,40}".prop_map(Value::String),
        (0usize..200_000, any::<char>()).prop_map(|(n, c)| Value::String(c.to_string().repeat(n))),
        Just(Value::String("a\0b".into())),
        Just(Value::String("a.b.*.>".into())),
        Just(Value::String("../../etc/passwd".into())),
    ];
    leaf.prop_recursive(8, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(".{0,12}", inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Replaces (or adds) one field, somewhere in the body, by `value`.
fn mutate(body: &mut Value, pick: usize, name: Option<String>, value: Value) {
    let Value::Object(map) = body else { return };
    let keys: Vec<String> = map.keys().cloned().collect();
    match name {
        Some(unknown) => {
            map.insert(unknown, value);
        }
        None if keys.is_empty() => {
            map.insert("x".into(), value);
        }
        None => {
            let key = &keys[pick % keys.len()];
            match map.get_mut(key) {
                // Go one level down half the time (a link inside `link`, a key inside `key`).
                Some(inner @ Value::Object(_)) if pick % 2 == 0 => {
                    mutate(inner, pick / 2, None, value)
                }
                Some(slot) => *slot = value,
                None => {}
            }
        }
    }
}

/// What every refusal must be: invalid, named, short, and not an echo of a long input.
fn clear_refusal(err: &trellis_lattice::ControlError, sent: &[u8]) {
    assert_eq!(err.kind, ErrorKind::Invalid, "{err:?}");
    assert!(!err.message.is_empty());
    assert!(
        err.message.len() <= MAX_MESSAGE,
        "a refusal of {} bytes: {}…",
        err.message.len(),
        &err.message[..200.min(err.message.len())]
    );
    // No 200-byte run of what was sent comes back.
    if sent.len() > 400 {
        let text = String::from_utf8_lossy(sent);
        let middle: String = text
            .chars()
            .skip(text.chars().count() / 2)
            .take(200)
            .collect();
        if middle.chars().count() == 200 {
            assert!(
                !err.message.contains(&middle),
                "the input was echoed: {}",
                err.message
            );
        }
    }
}

/// Ids a request that passed may hold: one subject token each.
fn token(id: &str) -> bool {
    !id.is_empty() && !id.contains(['.', '*', '>', ' ', '\t', '\r', '\n', '\0'])
}

fn accepted_ids_are_tokens(req: &ControlRequest) {
    let ids: Vec<&str> = match req {
        ControlRequest::Host(HostRequest::Scale(r)) => vec![&r.component_id],
        ControlRequest::Host(HostRequest::StartProvider(r)) => vec![&r.provider_id],
        ControlRequest::Host(HostRequest::StopProvider(r)) => vec![&r.provider_id],
        ControlRequest::Host(HostRequest::Auction(r)) => vec![&r.component_id],
        ControlRequest::Describe(r) => vec![&r.component_id],
        ControlRequest::State(StateRequest::PutLink(r)) => {
            vec![&r.link.source_id, &r.link.target_id]
        }
        ControlRequest::State(StateRequest::RetargetLink(r)) => {
            vec![&r.key.source_id, &r.target_id]
        }
        ControlRequest::State(StateRequest::DeleteLink(r)) => vec![&r.key.source_id, &r.key.name],
        ControlRequest::State(StateRequest::PutConfig(r)) => vec![&r.name],
        ControlRequest::State(StateRequest::DeleteConfig(r)) => vec![&r.name],
        _ => vec![],
    };
    for id in ids {
        assert!(
            token(id),
            "accepted an id that is not one subject token: {id:?}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn arbitrary_bytes_on_every_subject_are_refused_clearly(
        which in any::<prop::sample::Index>(),
        payload in prop::collection::vec(any::<u8>(), 0..4096),
    ) {
        let s = Subjects::new("t");
        let requests = valid_requests(&s);
        let (subject, _) = which.get(&requests);
        if let Err(err) = ControlRequest::parse(&s, subject, &payload) {
            clear_refusal(&err, &payload);
        }
    }

    #[test]
    fn valid_requests_with_one_hostile_field_never_panic(
        which in any::<prop::sample::Index>(),
        pick in any::<usize>(),
        unknown in prop::option::weighted(0.2, "[a-z_]{1,12}"),
        value in hostile_value(),
    ) {
        let s = Subjects::new("t");
        let requests = valid_requests(&s);
        let (subject, body) = which.get(&requests);
        let mut body = body.clone();
        mutate(&mut body, pick, unknown, value);
        let payload = serde_json::to_vec(&body).unwrap_or_default();
        match ControlRequest::parse(&s, subject, &payload) {
            Ok(req) => accepted_ids_are_tokens(&req),
            Err(err) => clear_refusal(&err, &payload),
        }
    }

    #[test]
    fn arbitrary_subjects_are_refused_clearly(
        tokens in prop::collection::vec("[a-z*>]{0,8}|.{0,300}", 0..10),
    ) {
        let s = Subjects::new("t");
        let subject = tokens.join(".");
        if let Err(err) = ControlRequest::parse(&s, &subject, b"{}") {
            clear_refusal(&err, subject.as_bytes());
        }
    }
}

#[test]
fn every_valid_request_parses() {
    // The mutations above start from requests that are accepted as they are.
    let s = Subjects::new("t");
    for (subject, body) in valid_requests(&s) {
        let payload = serde_json::to_vec(&body).expect("json");
        if let Err(e) = ControlRequest::parse(&s, &subject, &payload) {
            panic!("{subject} {body}: {e}");
        }
    }
}

#[test]
fn a_megabyte_string_in_a_number_field_is_not_repeated_back() {
    let s = Subjects::new("t");
    let long = "9".repeat(1 << 20) + "x";
    let body = json!({"component_id": "c", "image": "/c.wasm", "replicas": long});
    let payload = serde_json::to_vec(&body).expect("json");
    let err = ControlRequest::parse(&s, &s.component_scale(HOST), &payload).unwrap_err();
    assert!(
        err.message
            .contains("malformed scale request: invalid type: string"),
        "{}",
        err.message
    );
    assert!(
        err.message.contains("(1048577 characters)"),
        "{}",
        err.message
    );
    assert!(err.message.len() < 400, "{}", err.message);
}
