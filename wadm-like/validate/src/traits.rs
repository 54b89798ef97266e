//! Traits: `spreadscaler`, `daemonscaler` and `link`, each with `type` and `properties`.

use std::collections::BTreeSet;

use serde_json::Value;
use trellis_lattice::labels;
use trellis_lattice::link::validate_wit_name;
use trellis_lattice::manifest::{
    ComponentKind, DaemonScaler, LinkSource, LinkTarget, LinkTrait, Spread, SpreadScaler, Trait,
};

use super::component::config_refs;
use super::fields::{self, Errors, Obj};

const TRAIT_TYPES: &[&str] = &["spreadscaler", "daemonscaler", "link"];

/// Most replicas one scaler may ask for: more is a typo, not a plan.
pub(crate) const MAX_INSTANCES: u32 = 100_000;
/// Largest spread weight; keeps the apportionment arithmetic far from overflow.
pub(crate) const MAX_WEIGHT: u32 = 1_000_000;

pub(super) fn walk(v: &Value, path: &str, kind: ComponentKind, errs: &mut Errors) -> Option<Trait> {
    let obj = Obj::open(v, path, "a trait", &["type", "properties"], errs)?;
    let ty = obj.req_str("type", "spreadscaler, daemonscaler or link", errs)?;
    let props_path = obj.at("properties");
    let props = obj.get("properties");
    match ty {
        "spreadscaler" => {
            let props = obj.require("properties", "spreadscaler needs `instances`", errs)?;
            spreadscaler(props, &props_path, errs).map(Trait::SpreadScaler)
        }
        "daemonscaler" => {
            let empty = Value::Object(Default::default());
            daemonscaler(props.unwrap_or(&empty), &props_path, kind, errs).map(Trait::DaemonScaler)
        }
        "link" => {
            let props = obj.require("properties", "link needs a target and interfaces", errs)?;
            link(props, &props_path, errs).map(Trait::Link)
        }
        other => {
            errs.add(
                &obj.at("type"),
                format!(
                    "unknown trait type {:?}; expected one of: {}{}",
                    trellis_lattice::error::shorten(other),
                    TRAIT_TYPES.join(", "),
                    fields::hint(other, TRAIT_TYPES)
                ),
            );
            None
        }
    }
}

fn spreadscaler(v: &Value, path: &str, errs: &mut Errors) -> Option<SpreadScaler> {
    let obj = Obj::open(
        v,
        path,
        "spreadscaler properties",
        &["instances", "spread"],
        errs,
    )?;
    let before = errs.len();
    let instances = obj
        .require("instances", "the number of replicas across hosts", errs)
        .and_then(|v| {
            fields::bounded_u32(
                v,
                &obj.at("instances"),
                "spreadscaler.instances",
                MAX_INSTANCES,
                errs,
            )
        });
    let spread = spreads(&obj, "spreadscaler", true, errs);
    (errs.len() == before).then_some(SpreadScaler {
        instances: instances?,
        spread,
    })
}

fn daemonscaler(
    v: &Value,
    path: &str,
    kind: ComponentKind,
    errs: &mut Errors,
) -> Option<DaemonScaler> {
    let obj = Obj::open(
        v,
        path,
        "daemonscaler properties",
        &["instances", "spread"],
        errs,
    )?;
    let before = errs.len();
    let instances = match obj.get("instances") {
        None => 1,
        Some(v) => {
            let at = obj.at("instances");
            let n = fields::bounded_u32(v, &at, "daemonscaler.instances", MAX_INSTANCES, errs);
            if kind == ComponentKind::Capability && n.is_some_and(|n| n > 1) {
                errs.add(
                    &at,
                    "a capability provider runs at most once per host; daemonscaler.instances must be 0 or 1",
                );
            }
            n.unwrap_or(1)
        }
    };
    let spread = spreads(&obj, "daemonscaler", false, errs);
    (errs.len() == before).then_some(DaemonScaler { instances, spread })
}

/// The `spread` list. Weights only matter to a spreadscaler (`weighted`).
fn spreads(obj: &Obj<'_>, scaler: &str, weighted: bool, errs: &mut Errors) -> Vec<Spread> {
    let Some(v) = obj.get("spread") else {
        return Vec::new();
    };
    let path = obj.at("spread");
    let Some(items) = fields::list(v, &path, &format!("{scaler}.spread"), errs) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut names = BTreeSet::new();
    for (k, item) in items.iter().enumerate() {
        let at = fields::index(&path, k);
        let Some(s) = Obj::open(
            item,
            &at,
            "a spread",
            &["name", "requirements", "weight"],
            errs,
        ) else {
            continue;
        };
        let name = s.req_str("name", "the spread name", errs).and_then(|name| {
            if name.trim().is_empty() {
                errs.add(&s.at("name"), "the spread name must not be empty");
                None
            } else if !names.insert(name.to_string()) {
                errs.add(&s.at("name"), format!("duplicate spread name {name:?}"));
                None
            } else {
                Some(name.to_string())
            }
        });
        let requirements = match s.get("requirements") {
            None => Some(Default::default()),
            Some(v) => fields::string_map(v, &s.at("requirements"), "requirement", errs, |k, v| {
                labels::validate_key(k)
                    .and_then(|()| labels::validate_value(k, v))
                    .map_err(|e| e.to_string())
            }),
        };
        let weight = s.get("weight").and_then(|v| {
            fields::bounded_u32(
                v,
                &s.at("weight"),
                &format!("{scaler} spread weight"),
                MAX_WEIGHT,
                errs,
            )
        });
        if let (Some(name), Some(requirements)) = (name, requirements) {
            out.push(Spread {
                name,
                requirements,
                weight,
            });
        }
    }
    if weighted
        && !out.is_empty()
        && out.len() == items.len()
        && out.iter().all(|s| s.weight() == 0)
    {
        errs.add(
            &path,
            "the spread weights sum to 0; give at least one spread a positive weight",
        );
    }
    out
}

fn link(v: &Value, path: &str, errs: &mut Errors) -> Option<LinkTrait> {
    let obj = Obj::open(
        v,
        path,
        "link properties",
        &[
            "target",
            "namespace",
            "package",
            "interfaces",
            "name",
            "source",
        ],
        errs,
    )?;
    let before = errs.len();
    let target = obj
        .require("target", "the component the link points to", errs)
        .and_then(|v| link_target(v, &obj.at("target"), errs));
    let namespace = wit_name(&obj, "namespace", "WIT namespace", errs);
    let package = wit_name(&obj, "package", "WIT package", errs);
    let interfaces = obj
        .require("interfaces", "the interfaces the link covers", errs)
        .and_then(|v| interfaces(v, &obj.at("interfaces"), errs));
    let name = obj.opt_str("name", "the link name", errs).map(|name| {
        if let Err(e) = trellis_lattice::id::validate_token("link name", name) {
            errs.add(&obj.at("name"), e.to_string());
        }
        name.to_string()
    });
    let source = obj.get("source").and_then(|v| {
        let src = Obj::open(v, &obj.at("source"), "link source", &["config"], errs)?;
        let config = src
            .get("config")
            .map(|c| config_refs(c, &src.at("config"), errs))
            .unwrap_or_default();
        Some(LinkSource { config })
    });
    (errs.len() == before).then_some(LinkTrait {
        target: target?,
        namespace: namespace?,
        package: package?,
        interfaces: interfaces?,
        name,
        source,
    })
}

fn link_target(v: &Value, path: &str, errs: &mut Errors) -> Option<LinkTarget> {
    if let Value::String(s) = v {
        errs.add(
            path,
            format!("the link target must be a mapping with the component's name, e.g. `target: {{ name: {s} }}`"),
        );
        return None;
    }
    let obj = Obj::open(v, path, "link target", &["name", "config"], errs)?;
    let name = obj.req_str("name", "a component name in this application", errs);
    let config = obj
        .get("config")
        .map(|c| config_refs(c, &obj.at("config"), errs))
        .unwrap_or_default();
    Some(LinkTarget {
        name: name?.to_string(),
        config,
    })
}

/// `namespace` or `package`, with a hint when both were written into one field.
fn wit_name(obj: &Obj<'_>, field: &str, what: &str, errs: &mut Errors) -> Option<String> {
    let value = obj.req_str(field, what, errs)?;
    if let Err(e) = validate_wit_name(what, value) {
        let hint = if value.contains(':') || value.contains('/') {
            " (give `namespace` and `package` separately, e.g. namespace: wasi, package: keyvalue)"
        } else {
            ""
        };
        errs.add(&obj.at(field), format!("{e}{hint}"));
        return None;
    }
    Some(value.to_string())
}

fn interfaces(v: &Value, path: &str, errs: &mut Errors) -> Option<Vec<String>> {
    let items = fields::list(v, path, "interfaces", errs)?;
    if items.is_empty() {
        errs.add(path, "a link must name at least one interface");
        return None;
    }
    let before = errs.len();
    let mut out: Vec<String> = Vec::new();
    for (k, item) in items.iter().enumerate() {
        let at = fields::index(path, k);
        let Some(name) = fields::string(item, &at, "an interface name", errs) else {
            continue;
        };
        if let Err(e) = validate_wit_name("WIT interface", name) {
            let hint = if name.contains(['/', ':', '@']) {
                " (give only the interface name, e.g. store; namespace and package have their own fields)"
            } else {
                ""
            };
            errs.add(&at, format!("{e}{hint}"));
        } else if out.iter().any(|i| i == name) {
            errs.add(&at, format!("interface {name} is listed twice"));
        } else {
            out.push(name.to_string());
        }
    }
    (errs.len() == before).then_some(out)
}
