//! wRPC wire encoding → JSON.

use serde_json::{json, Map, Value as Json};

use super::leb128::{read_signed, read_unsigned};
use super::{FunctionSignature, ValueError, ValueType};

/// Decodes the results of `sig` from the bytes a callee sent. One result gives that value;
/// several give an array; none give `null`.
pub fn decode_results(sig: &FunctionSignature, mut bytes: &[u8]) -> Result<Json, ValueError> {
    let mut values = Vec::with_capacity(sig.results.len());
    for (i, ty) in sig.results.iter().enumerate() {
        values.push(decode(&mut bytes, ty, &format!("result {i}"))?);
    }
    if !bytes.is_empty() {
        return Err(ValueError::new(
            "results",
            format!("{} unexpected trailing byte(s)", bytes.len()),
        ));
    }
    Ok(match values.len() {
        0 => Json::Null,
        1 => values.pop().unwrap_or(Json::Null),
        _ => Json::Array(values),
    })
}

/// Elements of a list whose values take no bytes (empty tuples and records): their number is
/// only what the sender claims, so it is bounded.
const MAX_EMPTY_ELEMENTS: usize = 1 << 16;

/// The fewest bytes a value of `ty` is encoded in.
fn min_size(ty: &ValueType) -> usize {
    match ty {
        ValueType::F32 => 4,
        ValueType::F64 => 8,
        ValueType::Tuple { types } => types.iter().map(min_size).fold(0, usize::saturating_add),
        ValueType::Record { fields } => fields
            .iter()
            .map(|f| min_size(&f.ty))
            .fold(0, usize::saturating_add),
        // Every other value has at least a byte: a tag, a length, a LEB128 digit.
        _ => 1,
    }
}

fn truncated(path: &str, ty: &ValueType) -> ValueError {
    ValueError::new(path, format!("input ended inside a {ty}"))
}

fn take<'a>(
    input: &mut &'a [u8],
    n: usize,
    path: &str,
    ty: &ValueType,
) -> Result<&'a [u8], ValueError> {
    if input.len() < n {
        return Err(truncated(path, ty));
    }
    let (head, rest) = input.split_at(n);
    *input = rest;
    Ok(head)
}

fn unsigned(input: &mut &[u8], bits: u32, path: &str, ty: &ValueType) -> Result<u64, ValueError> {
    read_unsigned(input, bits).ok_or_else(|| ValueError::new(path, format!("malformed {ty}")))
}

fn signed(input: &mut &[u8], bits: u32, path: &str, ty: &ValueType) -> Result<i64, ValueError> {
    read_signed(input, bits).ok_or_else(|| ValueError::new(path, format!("malformed {ty}")))
}

fn float(f: f64) -> Json {
    serde_json::Number::from_f64(f)
        .map(Json::Number)
        .unwrap_or_else(|| Json::String(f.to_string()))
}

fn decode(input: &mut &[u8], ty: &ValueType, path: &str) -> Result<Json, ValueError> {
    Ok(match ty {
        ValueType::Bool => match take(input, 1, path, ty)?[0] {
            0 => json!(false),
            1 => json!(true),
            b => return Err(ValueError::new(path, format!("invalid bool byte {b}"))),
        },
        ValueType::U8 => json!(take(input, 1, path, ty)?[0]),
        ValueType::S8 => json!(take(input, 1, path, ty)?[0] as i8),
        ValueType::U16 => json!(unsigned(input, 16, path, ty)?),
        ValueType::U32 => json!(unsigned(input, 32, path, ty)?),
        ValueType::U64 => json!(unsigned(input, 64, path, ty)?),
        ValueType::S16 => json!(signed(input, 16, path, ty)?),
        ValueType::S32 => json!(signed(input, 32, path, ty)?),
        ValueType::S64 => json!(signed(input, 64, path, ty)?),
        ValueType::F32 => {
            let b = take(input, 4, path, ty)?;
            float(f32::from_le_bytes([b[0], b[1], b[2], b[3]]).into())
        }
        ValueType::F64 => {
            let b = take(input, 8, path, ty)?;
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            float(f64::from_le_bytes(a))
        }
        ValueType::Char => {
            let first = *input.first().ok_or_else(|| truncated(path, ty))?;
            let len = match first {
                0x00..=0x7f => 1,
                0xc0..=0xdf => 2,
                0xe0..=0xef => 3,
                0xf0..=0xf7 => 4,
                _ => return Err(ValueError::new(path, "invalid UTF-8 in char")),
            };
            let bytes = take(input, len, path, ty)?;
            let s = std::str::from_utf8(bytes)
                .map_err(|_| ValueError::new(path, "invalid UTF-8 in char"))?;
            json!(s)
        }
        ValueType::String => {
            let len = unsigned(input, 32, path, ty)? as usize;
            let bytes = take(input, len, path, ty)?;
            let s = std::str::from_utf8(bytes)
                .map_err(|_| ValueError::new(path, "invalid UTF-8 in string"))?;
            json!(s)
        }
        ValueType::List { element } => {
            let len = unsigned(input, 32, path, ty)? as usize;
            // A length the input cannot hold is corrupt, refused before anything is built;
            // elements that take no bytes at all are only believed up to a bound.
            match min_size(element) {
                0 if len > MAX_EMPTY_ELEMENTS => {
                    return Err(ValueError::new(
                        path,
                        format!("a list of {len} empty values (at most {MAX_EMPTY_ELEMENTS})"),
                    ))
                }
                0 => {}
                min if len > input.len() / min => return Err(truncated(path, ty)),
                _ => {}
            }
            let mut items = Vec::with_capacity(len.min(input.len()));
            for i in 0..len {
                items.push(decode(input, element, &format!("{path}[{i}]"))?);
            }
            Json::Array(items)
        }
        ValueType::Tuple { types } => Json::Array(
            types
                .iter()
                .enumerate()
                .map(|(i, t)| decode(input, t, &format!("{path}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        ValueType::Record { fields } => {
            let mut obj = Map::new();
            for f in fields {
                let v = decode(input, &f.ty, &format!("{path}.{}", f.name))?;
                obj.insert(f.name.clone(), v);
            }
            Json::Object(obj)
        }
        ValueType::Variant { cases } => {
            let i = unsigned(input, 32, path, ty)? as usize;
            let case = cases
                .get(i)
                .ok_or_else(|| ValueError::new(path, format!("unknown case index {i}")))?;
            match &case.ty {
                Some(t) => {
                    let v = decode(input, t, &format!("{path}.{}", case.name))?;
                    json!({ case.name.clone(): v })
                }
                None => json!(case.name),
            }
        }
        ValueType::Enum { names } => {
            let i = unsigned(input, 32, path, ty)? as usize;
            let name = names
                .get(i)
                .ok_or_else(|| ValueError::new(path, format!("unknown enum index {i}")))?;
            json!(name)
        }
        ValueType::Option { inner } => match take(input, 1, path, ty)?[0] {
            0 => Json::Null,
            1 => decode(input, inner, path)?,
            b => return Err(ValueError::new(path, format!("invalid option tag {b}"))),
        },
        ValueType::Result { ok, err } => {
            let (key, t) = match take(input, 1, path, ty)?[0] {
                0 => ("ok", ok),
                1 => ("err", err),
                b => return Err(ValueError::new(path, format!("invalid result tag {b}"))),
            };
            let v = match t {
                Some(t) => decode(input, t, &format!("{path}.{key}"))?,
                None => Json::Null,
            };
            json!({ key: v })
        }
        ValueType::Flags { names } => {
            // One bit per name, in as many bytes as that takes (a type from a hostile
            // describe may name more than 64 flags).
            let bytes = take(input, names.len().div_ceil(8).max(1), path, ty)?;
            Json::Array(
                names
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| bytes[i / 8] & (1 << (i % 8)) != 0)
                    .map(|(_, n)| json!(n))
                    .collect(),
            )
        }
        ValueType::Unsupported { what } => {
            return Err(ValueError::new(
                path,
                format!("values of type {what} cannot be shown as JSON"),
            ))
        }
    })
}
