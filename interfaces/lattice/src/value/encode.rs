//! JSON → wRPC wire encoding.

use serde_json::Value as Json;

use super::leb128::{write_signed, write_unsigned};
use super::{FunctionSignature, ValueError, ValueType};

/// Encodes JSON arguments as the parameters of `sig`.
pub fn encode_params(sig: &FunctionSignature, args: &[Json]) -> Result<Vec<u8>, ValueError> {
    if args.len() != sig.params.len() {
        return Err(ValueError::new(
            &sig.qualified_name(),
            format!(
                "expects {} argument(s) ({}), got {}",
                sig.params.len(),
                sig.params
                    .iter()
                    .map(|p| format!("{}: {}", p.name, p.ty))
                    .collect::<Vec<_>>()
                    .join(", "),
                args.len()
            ),
        ));
    }
    let mut buf = Vec::new();
    for (param, arg) in sig.params.iter().zip(args) {
        encode(
            &mut buf,
            &param.ty,
            arg,
            &format!("argument `{}`", param.name),
        )?;
    }
    Ok(buf)
}

fn kind(v: &Json) -> String {
    match v {
        Json::Null => "null".into(),
        Json::Bool(b) => format!("boolean {b}"),
        Json::Number(n) => format!("number {n}"),
        Json::String(s) => format!("string {s:?}"),
        Json::Array(_) => "an array".into(),
        Json::Object(_) => "an object".into(),
    }
}

fn mismatch(path: &str, ty: &ValueType, v: &Json) -> ValueError {
    ValueError::new(path, format!("expected {ty}, found {}", kind(v)))
}

fn int<T: TryFrom<i128>>(path: &str, ty: &ValueType, v: &Json) -> Result<T, ValueError> {
    let wide = match v {
        Json::Number(n) => n
            .as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from)),
        _ => None,
    }
    .ok_or_else(|| mismatch(path, ty, v))?;
    T::try_from(wide).map_err(|_| ValueError::new(path, format!("{wide} does not fit in {ty}")))
}

fn discriminant(buf: &mut Vec<u8>, i: usize) {
    write_unsigned(buf, i as u64);
}

fn encode(buf: &mut Vec<u8>, ty: &ValueType, v: &Json, path: &str) -> Result<(), ValueError> {
    match ty {
        ValueType::Bool => {
            let b = v.as_bool().ok_or_else(|| mismatch(path, ty, v))?;
            buf.push(u8::from(b));
        }
        ValueType::U8 => buf.push(int::<u8>(path, ty, v)?),
        ValueType::S8 => buf.push(int::<i8>(path, ty, v)? as u8),
        ValueType::U16 => write_unsigned(buf, int::<u16>(path, ty, v)?.into()),
        ValueType::U32 => write_unsigned(buf, int::<u32>(path, ty, v)?.into()),
        ValueType::U64 => write_unsigned(buf, int::<u64>(path, ty, v)?),
        ValueType::S16 => write_signed(buf, int::<i16>(path, ty, v)?.into()),
        ValueType::S32 => write_signed(buf, int::<i32>(path, ty, v)?.into()),
        ValueType::S64 => write_signed(buf, int::<i64>(path, ty, v)?),
        ValueType::F32 => {
            let f = v.as_f64().ok_or_else(|| mismatch(path, ty, v))?;
            buf.extend_from_slice(&(f as f32).to_le_bytes());
        }
        ValueType::F64 => {
            let f = v.as_f64().ok_or_else(|| mismatch(path, ty, v))?;
            buf.extend_from_slice(&f.to_le_bytes());
        }
        ValueType::Char => {
            let s = v.as_str().ok_or_else(|| mismatch(path, ty, v))?;
            let mut chars = s.chars();
            let (Some(c), None) = (chars.next(), chars.next()) else {
                return Err(ValueError::new(
                    path,
                    format!("expected a string of exactly one character, found {s:?}"),
                ));
            };
            let mut tmp = [0u8; 4];
            buf.extend_from_slice(c.encode_utf8(&mut tmp).as_bytes());
        }
        ValueType::String => {
            let s = v.as_str().ok_or_else(|| mismatch(path, ty, v))?;
            write_len(buf, s.len(), path)?;
            buf.extend_from_slice(s.as_bytes());
        }
        ValueType::List { element } => {
            let items = v.as_array().ok_or_else(|| mismatch(path, ty, v))?;
            write_len(buf, items.len(), path)?;
            for (i, item) in items.iter().enumerate() {
                encode(buf, element, item, &format!("{path}[{i}]"))?;
            }
        }
        ValueType::Tuple { types } => {
            let items = v.as_array().ok_or_else(|| mismatch(path, ty, v))?;
            if items.len() != types.len() {
                return Err(ValueError::new(
                    path,
                    format!(
                        "expected {ty} ({} elements), found {} elements",
                        types.len(),
                        items.len()
                    ),
                ));
            }
            for (i, (t, item)) in types.iter().zip(items).enumerate() {
                encode(buf, t, item, &format!("{path}[{i}]"))?;
            }
        }
        ValueType::Record { fields } => {
            let obj = v.as_object().ok_or_else(|| mismatch(path, ty, v))?;
            if let Some(extra) = obj.keys().find(|k| !fields.iter().any(|f| &f.name == *k)) {
                return Err(ValueError::new(
                    path,
                    format!("unknown field `{extra}` (fields: {})", field_names(fields)),
                ));
            }
            for field in fields {
                let fpath = format!("{path}.{}", field.name);
                match obj.get(&field.name) {
                    Some(fv) => encode(buf, &field.ty, fv, &fpath)?,
                    None if matches!(field.ty, ValueType::Option { .. }) => buf.push(0),
                    None => return Err(ValueError::new(&fpath, "missing field")),
                }
            }
        }
        ValueType::Variant { cases } => {
            let (name, payload) = match v {
                Json::String(s) => (s.as_str(), None),
                Json::Object(o) if o.len() == 1 => {
                    let (k, p) = o.iter().next().ok_or_else(|| mismatch(path, ty, v))?;
                    (k.as_str(), Some(p))
                }
                _ => return Err(mismatch(path, ty, v)),
            };
            let Some((i, case)) = cases.iter().enumerate().find(|(_, c)| c.name == name) else {
                return Err(ValueError::new(
                    path,
                    format!(
                        "unknown case `{name}` (cases: {})",
                        cases
                            .iter()
                            .map(|c| c.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            };
            discriminant(buf, i);
            match (&case.ty, payload) {
                (Some(t), Some(p)) => encode(buf, t, p, &format!("{path}.{name}"))?,
                (Some(_), None) => {
                    return Err(ValueError::new(
                        path,
                        format!("case `{name}` needs a payload: {{\"{name}\": ...}}"),
                    ))
                }
                (None, None | Some(Json::Null)) => {}
                (None, Some(_)) => {
                    return Err(ValueError::new(
                        path,
                        format!("case `{name}` has no payload"),
                    ))
                }
            }
        }
        ValueType::Enum { names } => {
            let s = v.as_str().ok_or_else(|| mismatch(path, ty, v))?;
            let i = names.iter().position(|n| n == s).ok_or_else(|| {
                ValueError::new(
                    path,
                    format!("unknown enum case `{s}` (cases: {})", names.join(", ")),
                )
            })?;
            discriminant(buf, i);
        }
        ValueType::Option { inner } => {
            if v.is_null() {
                buf.push(0);
            } else {
                buf.push(1);
                encode(buf, inner, v, path)?;
            }
        }
        ValueType::Result { ok, err } => {
            let obj = v.as_object().filter(|o| o.len() == 1);
            let Some((k, payload)) = obj.and_then(|o| o.iter().next()) else {
                return Err(ValueError::new(
                    path,
                    format!(
                        "expected {ty} as {{\"ok\": ...}} or {{\"err\": ...}}, found {}",
                        kind(v)
                    ),
                ));
            };
            let (tag, t) = match k.as_str() {
                "ok" => (0u8, ok),
                "err" => (1u8, err),
                other => {
                    return Err(ValueError::new(
                        path,
                        format!("expected key `ok` or `err`, found `{other}`"),
                    ))
                }
            };
            buf.push(tag);
            match t {
                Some(t) => encode(buf, t, payload, &format!("{path}.{k}"))?,
                None if payload.is_null() => {}
                None => {
                    return Err(ValueError::new(
                        path,
                        format!("`{k}` carries no value here; use null"),
                    ))
                }
            }
        }
        ValueType::Flags { names } => {
            let set = v.as_array().ok_or_else(|| mismatch(path, ty, v))?;
            // One bit per name, in as many bytes as that takes.
            let mut bits = vec![0u8; names.len().div_ceil(8).max(1)];
            for item in set {
                let name = item.as_str().ok_or_else(|| mismatch(path, ty, v))?;
                let i = names.iter().position(|n| n == name).ok_or_else(|| {
                    ValueError::new(
                        path,
                        format!("unknown flag `{name}` (flags: {})", names.join(", ")),
                    )
                })?;
                bits[i / 8] |= 1 << (i % 8);
            }
            buf.extend_from_slice(&bits);
        }
        ValueType::Unsupported { what } => {
            return Err(ValueError::new(
                path,
                format!("values of type {what} cannot be passed from the command line"),
            ))
        }
    }
    Ok(())
}

fn write_len(buf: &mut Vec<u8>, len: usize, path: &str) -> Result<(), ValueError> {
    let len = u32::try_from(len).map_err(|_| ValueError::new(path, "longer than 2^32"))?;
    write_unsigned(buf, len.into());
    Ok(())
}

fn field_names(fields: &[super::Field]) -> String {
    fields
        .iter()
        .map(|f| f.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
