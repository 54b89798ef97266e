use serde_json::json;

use super::*;

fn sig(params: Vec<ValueType>, results: Vec<ValueType>) -> FunctionSignature {
    FunctionSignature {
        instance: String::new(),
        name: "f".into(),
        params: params
            .into_iter()
            .enumerate()
            .map(|(i, ty)| Param {
                name: format!("p{i}"),
                ty,
            })
            .collect(),
        results,
    }
}

fn round_trip(ty: ValueType, v: serde_json::Value) -> Vec<u8> {
    let s = sig(vec![ty.clone()], vec![ty]);
    let bytes = encode_params(&s, std::slice::from_ref(&v)).unwrap();
    assert_eq!(decode_results(&s, &bytes).unwrap(), v);
    bytes
}

#[test]
fn wire_bytes_match_wrpc() {
    // Strings: LEB128 length then UTF-8, as wRPC's CoreNameEncoder writes them.
    assert_eq!(round_trip(ValueType::String, json!("Ada")), b"\x03Ada");
    assert_eq!(round_trip(ValueType::U8, json!(200)), [200]);
    assert_eq!(round_trip(ValueType::S8, json!(-1)), [0xff]);
    assert_eq!(round_trip(ValueType::U64, json!(300)), [0xac, 0x02]);
    assert_eq!(round_trip(ValueType::S32, json!(-2)), [0x7e]);
    assert_eq!(round_trip(ValueType::Bool, json!(true)), [1]);
    assert_eq!(round_trip(ValueType::Char, json!("é")), "é".as_bytes());
    assert_eq!(round_trip(ValueType::F64, json!(1.5)), 1.5f64.to_le_bytes());
    let opt = ValueType::Option {
        inner: Box::new(ValueType::U32),
    };
    assert_eq!(round_trip(opt.clone(), json!(null)), [0]);
    assert_eq!(round_trip(opt, json!(5)), [1, 5]);
}

#[test]
fn compound_round_trips() {
    let record = ValueType::Record {
        fields: vec![
            Field {
                name: "name".into(),
                ty: ValueType::String,
            },
            Field {
                name: "tags".into(),
                ty: ValueType::List {
                    element: Box::new(ValueType::String),
                },
            },
        ],
    };
    round_trip(record, json!({"name": "x", "tags": ["a", "b"]}));
    let variant = ValueType::Variant {
        cases: vec![
            Case {
                name: "none".into(),
                ty: None,
            },
            Case {
                name: "some".into(),
                ty: Some(ValueType::S64),
            },
        ],
    };
    round_trip(variant.clone(), json!("none"));
    assert_eq!(round_trip(variant, json!({"some": -5})), [1, 0x7b]);
    round_trip(
        ValueType::Enum {
            names: vec!["a".into(), "b".into()],
        },
        json!("b"),
    );
    let result = ValueType::Result {
        ok: Some(Box::new(ValueType::U32)),
        err: Some(Box::new(ValueType::String)),
    };
    round_trip(result.clone(), json!({"ok": 1}));
    round_trip(result, json!({"err": "boom"}));
    round_trip(
        ValueType::Result {
            ok: None,
            err: None,
        },
        json!({"ok": null}),
    );
    let flags = ValueType::Flags {
        names: (0..10).map(|i| format!("f{i}")).collect(),
    };
    assert_eq!(round_trip(flags, json!(["f1", "f9"])), [0b10, 0b10]);
    round_trip(
        ValueType::Tuple {
            types: vec![ValueType::U16, ValueType::Bool],
        },
        json!([7, false]),
    );
}

#[test]
fn errors_name_the_place() {
    let s = FunctionSignature {
        instance: "example:greeter/greet".into(),
        name: "greet".into(),
        params: vec![Param {
            name: "name".into(),
            ty: ValueType::String,
        }],
        results: vec![ValueType::String],
    };
    let err = encode_params(&s, &[json!(3)]).unwrap_err().to_string();
    assert_eq!(err, "argument `name`: expected string, found number 3");
    let err = encode_params(&s, &[]).unwrap_err().to_string();
    assert!(err.contains("expects 1 argument"), "{err}");
    let err = encode_params(&sig(vec![ValueType::U8], vec![]), &[json!(300)])
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not fit in u8"), "{err}");
    let record = ValueType::Record {
        fields: vec![Field {
            name: "port".into(),
            ty: ValueType::U16,
        }],
    };
    let err = encode_params(&sig(vec![record], vec![]), &[json!({"port": "x"})])
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("argument `p0`.port:"), "{err}");
    let err = decode_results(&s, b"\x05ab").unwrap_err().to_string();
    assert!(err.contains("ended inside a string"), "{err}");
    let err = decode_results(&s, b"\x01ab").unwrap_err().to_string();
    assert!(err.contains("trailing"), "{err}");
}

#[test]
fn signatures_print_like_wit() {
    let s = sig(
        vec![ValueType::String],
        vec![ValueType::Option {
            inner: Box::new(ValueType::U64),
        }],
    );
    assert_eq!(s.to_string(), "f: func(p0: string) -> option<u64>");
    assert!(s.unsupported().is_none());
    let bad = sig(
        vec![ValueType::Unsupported {
            what: "own<bucket>".into(),
        }],
        vec![],
    );
    assert_eq!(bad.unsupported(), Some("own<bucket>"));
}
