//! One entry of `spec.components`: name, type, properties (image, id, config) and traits.

use serde_json::Value;
use trellis_lattice::manifest::{ComponentKind, ComponentSpec, ConfigRef, Properties};

use super::cross::{self, Origin};
use super::fields::{self, Errors, Obj};
use super::traits;

const KINDS: &[&str] = &["component", "capability"];
const MAX_NAME_LEN: usize = 100;

/// Walks every component, then checks what spans components. Components that could not be
/// read completely are still returned in part so the cross checks can run; the caller
/// discards everything when any error was reported.
pub(super) fn walk_all(items: &[Value], app_name: &str, errs: &mut Errors) -> Vec<ComponentSpec> {
    let mut components = Vec::with_capacity(items.len());
    let mut origins = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let path = fields::index("spec.components", i);
        let (component, origin) = walk(item, &path, errs);
        components.push(component);
        origins.push(origin);
    }
    cross::check(app_name, &components, &origins, errs);
    components
}

/// One component. Missing parts are filled with defaults and flagged in the [`Origin`].
fn walk(v: &Value, path: &str, errs: &mut Errors) -> (ComponentSpec, Origin) {
    let mut origin = Origin {
        path: path.to_string(),
        ..Origin::default()
    };
    let mut spec = ComponentSpec {
        name: String::new(),
        kind: ComponentKind::Component,
        properties: Properties::default(),
        traits: Vec::new(),
    };
    let Some(obj) = Obj::open(
        v,
        path,
        "a component",
        &["name", "type", "properties", "traits"],
        errs,
    ) else {
        return (spec, origin);
    };
    if let Some(name) = obj.req_str("name", "the component name", errs) {
        if let Err(reason) = check_name(name) {
            errs.add(&obj.at("name"), reason);
        } else {
            spec.name = name.to_string();
            origin.name_known = true;
        }
    }
    if let Some(kind) = obj.req_str("type", "component or capability", errs) {
        match kind {
            "component" => spec.kind = ComponentKind::Component,
            "capability" => spec.kind = ComponentKind::Capability,
            other => errs.add(
                &obj.at("type"),
                format!(
                    "unknown component type {:?}; expected component or capability{}",
                    trellis_lattice::error::shorten(other),
                    fields::hint(other, KINDS)
                ),
            ),
        }
    }
    if let Some(props) = obj.require("properties", "the component's image", errs) {
        if let Some(p) = walk_properties(props, &obj.at("properties"), errs) {
            if p.issuer.is_some() && spec.kind == ComponentKind::Capability {
                // Providers are vouched for by the host's policy and their .sig, not a pin.
                errs.add(
                    &format!("{}.issuer", obj.at("properties")),
                    "issuer pins a component's signer; a capability's executable is checked by the host's --allowed-issuer policy",
                );
            }
            origin.id_explicit = p.id.is_some();
            spec.properties = p;
            origin.properties_known = true;
        }
    }
    if let Some(list) = obj.get("traits") {
        let at = obj.at("traits");
        if let Some(items) = fields::list(list, &at, "traits", errs) {
            for (j, item) in items.iter().enumerate() {
                if let Some(t) = traits::walk(item, &fields::index(&at, j), spec.kind, errs) {
                    spec.traits.push(t);
                    origin.trait_index.push(j);
                }
            }
            check_one_scaler(items, &at, errs);
        }
    }
    (spec, origin)
}

fn check_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err("the component name must not be empty".into());
    }
    if name.chars().count() > MAX_NAME_LEN {
        return Err(format!(
            "the component name must be at most {MAX_NAME_LEN} characters"
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(format!(
            "the component name {name:?} must not hold control characters"
        ));
    }
    Ok(())
}

fn walk_properties(v: &Value, path: &str, errs: &mut Errors) -> Option<Properties> {
    let keys: Vec<&str> = ["image", "id", "config", "issuer"]
        .into_iter()
        .chain(super::grants::KEYS.iter().copied())
        .collect();
    let obj = Obj::open(v, path, "properties", &keys, errs)?;
    let before = errs.len();
    let image = obj
        .req_str("image", "where the code comes from", errs)
        .map(|image| {
            if let Err(trellis_lattice::image::ImageError { reason, .. }) =
                trellis_lattice::image::ImageRef::parse(image)
            {
                errs.add(
                    &obj.at("image"),
                    format!("invalid image reference {image:?}: {reason}"),
                );
            }
            image.to_string()
        });
    let id = obj.opt_str("id", "properties.id", errs).map(|id| {
        if let Err(e) = trellis_lattice::id::validate_component_id(id) {
            errs.add(&obj.at("id"), e.to_string());
        }
        id.to_string()
    });
    let config = match obj.get("config") {
        Some(v) => config_refs(v, &obj.at("config"), errs),
        None => Vec::new(),
    };
    let issuer = obj.opt_str("issuer", "properties.issuer", errs).map(|key| {
        if let Err(e) = trellis_lattice::id::validate_issuer(key) {
            errs.add(&obj.at("issuer"), e.to_string());
        }
        key.to_string()
    });
    let granted = super::grants::walk(&obj, errs);
    (errs.len() == before).then_some(Properties {
        image: image?,
        id,
        config,
        env: granted.env,
        preopens: granted.preopens,
        allowed_outbound_hosts: granted.allowed_outbound_hosts,
        wall_clock: granted.wall_clock,
        issuer,
    })
}

/// A `config` list: entries with a `name`, inline `properties`, or both.
pub(super) fn config_refs(v: &Value, path: &str, errs: &mut Errors) -> Vec<ConfigRef> {
    let Some(items) = fields::list(v, path, "config", errs) else {
        return Vec::new();
    };
    let mut refs = Vec::new();
    for (k, item) in items.iter().enumerate() {
        let at = fields::index(path, k);
        let Some(obj) = Obj::open(item, &at, "a config entry", &["name", "properties"], errs)
        else {
            continue;
        };
        let name = obj
            .opt_str("name", "the config name", errs)
            .and_then(
                |name| match trellis_lattice::link::validate_config_name(name) {
                    Ok(()) => Some(name.to_string()),
                    Err(e) => {
                        errs.add(&obj.at("name"), e.to_string());
                        None
                    }
                },
            );
        let properties = obj.get("properties").and_then(|p| {
            fields::string_map(p, &obj.at("properties"), "config property", errs, |k, _| {
                if k.is_empty() {
                    Err("config property names must not be empty".into())
                } else {
                    Ok(())
                }
            })
        });
        if !obj.has("name") && !obj.has("properties") {
            errs.add(
                &at,
                "a config entry needs a `name` (existing named config), inline `properties`, or both",
            );
        }
        refs.push(ConfigRef { name, properties });
    }
    refs
}

/// A component is scaled by one scaler: two would fight over its replicas. Judged on the
/// written types, so it is reported even when a scaler has other mistakes.
fn check_one_scaler(traits: &[Value], path: &str, errs: &mut Errors) {
    let scalers: Vec<(usize, &str)> = traits
        .iter()
        .enumerate()
        .filter_map(|(j, t)| Some((j, t.get("type")?.as_str()?)))
        .filter(|(_, ty)| matches!(*ty, "spreadscaler" | "daemonscaler"))
        .collect();
    if let [(first_j, first), rest @ ..] = scalers.as_slice() {
        for (j, ty) in rest {
            errs.add(
                &fields::index(path, *j),
                format!(
                    "a component has at most one scaler, but this {ty} comes after the {first} at traits[{first_j}]"
                ),
            );
        }
    }
}
