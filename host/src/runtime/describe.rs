//! What a component offers and needs, read from its types: exported functions with their
//! signatures (for `trellis call` and serving), and imported interfaces.

use trellis_lattice::value::{Case, Field, FunctionSignature, Param, ValueType};
use wasmtime::component::types::{self, ComponentItem};
use wasmtime::component::{Component, ComponentExportIndex, Type};
use wasmtime::Engine;

/// One exported function: where it is, its wasmtime type, and its signature as data.
#[derive(Clone)]
pub struct ExportedFunction {
    pub ty: types::ComponentFunc,
    pub signature: FunctionSignature,
}

/// An exported function the host serves, with its export index resolved once.
#[derive(Clone)]
pub struct ServedFunction {
    pub export: ExportedFunction,
    pub index: ComponentExportIndex,
}

/// Exported functions whose values can cross the lattice; others are left unserved.
pub fn served_functions(engine: &Engine, component: &Component) -> Vec<ServedFunction> {
    exported_functions(engine, component)
        .into_iter()
        .filter_map(|export| {
            if let Some(what) = export.signature.unsupported() {
                tracing::debug!(
                    function = %export.signature.qualified_name(),
                    what,
                    "not serving an export whose values cannot cross the lattice"
                );
                return None;
            }
            let sig = &export.signature;
            let parent = if sig.instance.is_empty() {
                None
            } else {
                Some(component.get_export_index(None, &sig.instance)?)
            };
            let index = component.get_export_index(parent.as_ref(), &sig.name)?;
            Some(ServedFunction { export, index })
        })
        .collect()
}

/// The exported functions of a component, at the root and one interface deep.
pub fn exported_functions(engine: &Engine, component: &Component) -> Vec<ExportedFunction> {
    let mut out = Vec::new();
    for (name, item) in component.component_type().exports(engine) {
        match item {
            ComponentItem::ComponentFunc(ty) => out.push(function("", name, ty)),
            ComponentItem::ComponentInstance(instance) => {
                for (fname, item) in instance.exports(engine) {
                    if let ComponentItem::ComponentFunc(ty) = item {
                        out.push(function(name, fname, ty));
                    }
                }
            }
            _ => {}
        }
    }
    out
}

fn function(instance: &str, name: &str, ty: types::ComponentFunc) -> ExportedFunction {
    let signature = FunctionSignature {
        instance: instance.to_string(),
        name: name.to_string(),
        params: ty
            .params()
            .map(|(name, ty)| Param {
                name: name.to_string(),
                ty: value_type(&ty),
            })
            .collect(),
        results: ty.results().map(|t| value_type(&t)).collect(),
    };
    ExportedFunction { ty, signature }
}

/// Names of what a component exports: interfaces, and functions at its root.
pub fn export_names(engine: &Engine, component: &Component) -> Vec<String> {
    component
        .component_type()
        .exports(engine)
        .map(|(name, _)| name.to_string())
        .collect()
}

/// Names of what a component imports.
pub fn import_names(engine: &Engine, component: &Component) -> Vec<String> {
    component
        .component_type()
        .imports(engine)
        .map(|(name, _)| name.to_string())
        .collect()
}

/// A wasmtime type as data.
pub fn value_type(ty: &Type) -> ValueType {
    match ty {
        Type::Bool => ValueType::Bool,
        Type::S8 => ValueType::S8,
        Type::U8 => ValueType::U8,
        Type::S16 => ValueType::S16,
        Type::U16 => ValueType::U16,
        Type::S32 => ValueType::S32,
        Type::U32 => ValueType::U32,
        Type::S64 => ValueType::S64,
        Type::U64 => ValueType::U64,
        Type::Float32 => ValueType::F32,
        Type::Float64 => ValueType::F64,
        Type::Char => ValueType::Char,
        Type::String => ValueType::String,
        Type::List(l) => ValueType::List {
            element: Box::new(value_type(&l.ty())),
        },
        Type::Record(r) => ValueType::Record {
            fields: r
                .fields()
                .map(|f| Field {
                    name: f.name.to_string(),
                    ty: value_type(&f.ty),
                })
                .collect(),
        },
        Type::Tuple(t) => ValueType::Tuple {
            types: t.types().map(|t| value_type(&t)).collect(),
        },
        Type::Variant(v) => ValueType::Variant {
            cases: v
                .cases()
                .map(|c| Case {
                    name: c.name.to_string(),
                    ty: c.ty.as_ref().map(value_type),
                })
                .collect(),
        },
        Type::Enum(e) => ValueType::Enum {
            names: e.names().map(str::to_string).collect(),
        },
        Type::Option(o) => ValueType::Option {
            inner: Box::new(value_type(&o.ty())),
        },
        Type::Result(r) => ValueType::Result {
            ok: r.ok().map(|t| Box::new(value_type(&t))),
            err: r.err().map(|t| Box::new(value_type(&t))),
        },
        Type::Flags(f) => ValueType::Flags {
            names: f.names().map(str::to_string).collect(),
        },
        Type::Map(_) => unsupported("map"),
        Type::Own(_) => unsupported("own<resource>"),
        Type::Borrow(_) => unsupported("borrow<resource>"),
        Type::Future(_) => unsupported("future"),
        Type::Stream(_) => unsupported("stream"),
        Type::ErrorContext => unsupported("error-context"),
    }
}

fn unsupported(what: &str) -> ValueType {
    ValueType::Unsupported {
        what: what.to_string(),
    }
}
