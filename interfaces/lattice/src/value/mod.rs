//! WIT value types as data, and the codec between JSON and the wRPC wire encoding.
//!
//! A host describes a component's exports as [`FunctionSignature`]s; `trellis call` encodes
//! JSON arguments into wRPC parameters with [`encode_params`] and turns the result bytes back
//! into JSON with [`decode_results`], so the CLI needs neither the component nor wasmtime.
//!
//! JSON forms: numbers for integers and floats, strings for `char` and `string`, arrays for
//! `list`, `tuple` and `flags`, objects for records, `"case"` or `{"case": payload}` for
//! variants, the case name for enums, `null` or the value for `option`, and `{"ok": v}` /
//! `{"err": v}` for `result`.

mod decode;
mod encode;
pub(crate) mod leb128;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use decode::decode_results;
pub use encode::encode_params;

/// A WIT value type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ValueType {
    Bool,
    S8,
    U8,
    S16,
    U16,
    S32,
    U32,
    S64,
    U64,
    F32,
    F64,
    Char,
    String,
    List {
        element: Box<ValueType>,
    },
    Record {
        fields: Vec<Field>,
    },
    Tuple {
        types: Vec<ValueType>,
    },
    Variant {
        cases: Vec<Case>,
    },
    Enum {
        names: Vec<String>,
    },
    Option {
        inner: Box<ValueType>,
    },
    Result {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ok: Option<Box<ValueType>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        err: Option<Box<ValueType>>,
    },
    Flags {
        names: Vec<String>,
    },
    /// A type that cannot be written as JSON (resources, streams, futures, maps).
    Unsupported {
        what: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Field {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: ValueType,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Case {
    pub name: String,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub ty: Option<ValueType>,
}

/// A named parameter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Param {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: ValueType,
}

/// One exported function: its interface instance (empty at the root), name and types.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionSignature {
    #[serde(default)]
    pub instance: String,
    pub name: String,
    pub params: Vec<Param>,
    pub results: Vec<ValueType>,
}

impl FunctionSignature {
    /// `name` at the root, `instance#name` inside an interface.
    pub fn qualified_name(&self) -> String {
        if self.instance.is_empty() {
            self.name.clone()
        } else {
            format!("{}#{}", self.instance, self.name)
        }
    }

    /// The first type in the signature that cannot be passed as JSON, if any.
    pub fn unsupported(&self) -> Option<&str> {
        self.params
            .iter()
            .map(|p| &p.ty)
            .chain(&self.results)
            .find_map(ValueType::unsupported)
    }
}

impl ValueType {
    fn unsupported(&self) -> Option<&str> {
        match self {
            ValueType::Unsupported { what } => Some(what),
            ValueType::List { element } => element.unsupported(),
            ValueType::Option { inner } => inner.unsupported(),
            ValueType::Record { fields } => fields.iter().find_map(|f| f.ty.unsupported()),
            ValueType::Tuple { types } => types.iter().find_map(ValueType::unsupported),
            ValueType::Variant { cases } => cases
                .iter()
                .find_map(|c| c.ty.as_ref().and_then(ValueType::unsupported)),
            ValueType::Result { ok, err } => ok
                .as_deref()
                .and_then(ValueType::unsupported)
                .or_else(|| err.as_deref().and_then(ValueType::unsupported)),
            _ => None,
        }
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn list<T>(
            f: &mut fmt::Formatter<'_>,
            items: &[T],
            each: impl Fn(&mut fmt::Formatter<'_>, &T) -> fmt::Result,
        ) -> fmt::Result {
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                each(f, item)?;
            }
            Ok(())
        }
        match self {
            ValueType::Bool => f.write_str("bool"),
            ValueType::S8 => f.write_str("s8"),
            ValueType::U8 => f.write_str("u8"),
            ValueType::S16 => f.write_str("s16"),
            ValueType::U16 => f.write_str("u16"),
            ValueType::S32 => f.write_str("s32"),
            ValueType::U32 => f.write_str("u32"),
            ValueType::S64 => f.write_str("s64"),
            ValueType::U64 => f.write_str("u64"),
            ValueType::F32 => f.write_str("f32"),
            ValueType::F64 => f.write_str("f64"),
            ValueType::Char => f.write_str("char"),
            ValueType::String => f.write_str("string"),
            ValueType::List { element } => write!(f, "list<{element}>"),
            ValueType::Record { fields } => {
                f.write_str("record { ")?;
                list(f, fields, |f, field| {
                    write!(f, "{}: {}", field.name, field.ty)
                })?;
                f.write_str(" }")
            }
            ValueType::Tuple { types } => {
                f.write_str("tuple<")?;
                list(f, types, |f, t| write!(f, "{t}"))?;
                f.write_str(">")
            }
            ValueType::Variant { cases } => {
                f.write_str("variant { ")?;
                list(f, cases, |f, c| match &c.ty {
                    Some(t) => write!(f, "{}({t})", c.name),
                    None => f.write_str(&c.name),
                })?;
                f.write_str(" }")
            }
            ValueType::Enum { names } => write!(f, "enum {{ {} }}", names.join(", ")),
            ValueType::Option { inner } => write!(f, "option<{inner}>"),
            ValueType::Result { ok, err } => match (ok, err) {
                (None, None) => f.write_str("result"),
                (Some(ok), None) => write!(f, "result<{ok}>"),
                (None, Some(err)) => write!(f, "result<_, {err}>"),
                (Some(ok), Some(err)) => write!(f, "result<{ok}, {err}>"),
            },
            ValueType::Flags { names } => write!(f, "flags {{ {} }}", names.join(", ")),
            ValueType::Unsupported { what } => f.write_str(what),
        }
    }
}

impl fmt::Display for FunctionSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: func(", self.qualified_name())?;
        for (i, p) in self.params.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}: {}", p.name, p.ty)?;
        }
        f.write_str(")")?;
        match self.results.as_slice() {
            [] => Ok(()),
            [one] => write!(f, " -> {one}"),
            many => {
                f.write_str(" -> (")?;
                for (i, t) in many.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{t}")?;
                }
                f.write_str(")")
            }
        }
    }
}

/// A value that does not fit its type, located by a path such as `args[0].address.port`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ValueError {
    pub path: String,
    pub message: String,
}

impl ValueError {
    pub(crate) fn new(path: &str, message: impl Into<String>) -> Self {
        Self {
            path: path.to_string(),
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests;
