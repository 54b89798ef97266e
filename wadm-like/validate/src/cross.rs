//! Checks that span components: unique names and ids, link targets, unique link identities,
//! and inline configs that reuse a name with other values.

use std::collections::BTreeMap;

use trellis_lattice::link::Config;
use trellis_lattice::manifest::{
    sanitize_id, ComponentSpec, ConfigSite, Manifest, Metadata, Spec, API_VERSION, KIND,
};

use super::fields::{self, Errors};

/// What the walk could read of one component, so cross checks skip what is unknown and
/// point at the original trait positions.
#[derive(Debug, Default)]
pub(super) struct Origin {
    /// `spec.components[i]`
    pub path: String,
    pub name_known: bool,
    pub properties_known: bool,
    pub id_explicit: bool,
    /// For each trait read, its index in the original `traits` list.
    pub trait_index: Vec<usize>,
}

impl Origin {
    fn trait_path(&self, k: usize) -> String {
        let j = self.trait_index.get(k).copied().unwrap_or(k);
        fields::index(&fields::key(&self.path, "traits"), j)
    }
}

pub(super) fn check(
    app: &str,
    components: &[ComponentSpec],
    origins: &[Origin],
    errs: &mut Errors,
) {
    let known = || components.iter().zip(origins).filter(|(_, o)| o.name_known);
    names_and_ids(app, components, origins, errs);
    let mut names: Vec<&str> = Vec::new();
    for (c, _) in known() {
        if !names.contains(&c.name.as_str()) {
            names.push(&c.name);
        }
    }
    links(known(), &names, errs);
    configs(app, known(), errs);
}

fn names_and_ids(app: &str, components: &[ComponentSpec], origins: &[Origin], errs: &mut Errors) {
    let mut names: BTreeMap<&str, &str> = BTreeMap::new();
    let mut ids: BTreeMap<String, (&str, &str)> = BTreeMap::new();
    for (c, o) in components.iter().zip(origins) {
        if !o.name_known {
            continue;
        }
        if let Some(first) = names.insert(&c.name, &o.path) {
            names.insert(&c.name, first);
            errs.add(
                &fields::key(&o.path, "name"),
                format!(
                    "duplicate component name {:?} (first used at {first})",
                    c.name
                ),
            );
            continue;
        }
        if !o.properties_known {
            continue;
        }
        let id = match &c.properties.id {
            Some(id) => id.clone(),
            None => sanitize_id(&format!("{app}-{}", c.name)),
        };
        match ids.get(&id) {
            Some((first_path, first_name)) => {
                let at = if o.id_explicit {
                    fields::key(&fields::key(&o.path, "properties"), "id")
                } else {
                    fields::key(&o.path, "name")
                };
                errs.add(
                    &at,
                    format!(
                        "component id {id:?} is already used by component {first_name:?} at {first_path}; \
                         set a distinct properties.id"
                    ),
                );
            }
            None => {
                ids.insert(id, (&o.path, &c.name));
            }
        }
    }
}

fn links<'a>(
    components: impl Iterator<Item = (&'a ComponentSpec, &'a Origin)>,
    names: &[&str],
    errs: &mut Errors,
) {
    // (source, namespace, package, link name) -> where first declared
    let mut identities: BTreeMap<(String, String, String, String), String> = BTreeMap::new();
    for (c, o) in components {
        for (k, link) in c.links() {
            let at = o.trait_path(k);
            let target = link.target.name.as_str();
            let target_path = format!("{at}.properties.target.name");
            if target == c.name {
                errs.add(
                    &target_path,
                    format!("component {:?} cannot link to itself", c.name),
                );
            } else if !names.contains(&target) {
                let others: Vec<&str> = names.iter().copied().filter(|n| *n != c.name).collect();
                let help = match fields::did_you_mean(target, &others) {
                    Some(s) => format!(" (did you mean `{s}`?)"),
                    None => format!(" (components: {})", names.join(", ")),
                };
                errs.add(
                    &target_path,
                    format!("link target {target:?} is not a component in this application{help}"),
                );
            }
            let identity = (
                c.name.clone(),
                link.namespace.clone(),
                link.package.clone(),
                link.link_name().to_string(),
            );
            if let Some(first) = identities.get(&identity) {
                errs.add(
                    &at,
                    format!(
                        "duplicate link: component {:?} already links {} with name {:?} at {first}; \
                         give one of them a distinct `name`",
                        c.name,
                        link.wit_package(),
                        link.link_name()
                    ),
                );
            } else {
                identities.insert(identity, at);
            }
        }
    }
}

/// Inline configs are stored under their name; two different value sets under one name would
/// overwrite each other.
fn configs<'a>(
    app: &str,
    components: impl Iterator<Item = (&'a ComponentSpec, &'a Origin)>,
    errs: &mut Errors,
) {
    let naming = Manifest {
        api_version: API_VERSION.into(),
        kind: KIND.into(),
        metadata: Metadata {
            name: app.to_string(),
            annotations: Default::default(),
        },
        spec: Spec::default(),
    };
    let mut seen: BTreeMap<String, (&Config, String)> = BTreeMap::new();
    for (c, o) in components {
        for u in naming.config_uses(c) {
            let Some(values) = u.properties else { continue };
            let at = match u.site {
                ConfigSite::Properties => format!("{}.properties.config[{}]", o.path, u.index),
                ConfigSite::LinkSource { trait_index } => format!(
                    "{}.properties.source.config[{}]",
                    o.trait_path(trait_index),
                    u.index
                ),
                ConfigSite::LinkTarget { trait_index } => format!(
                    "{}.properties.target.config[{}]",
                    o.trait_path(trait_index),
                    u.index
                ),
            };
            match seen.get(&u.name) {
                Some((first, first_at)) if *first != values => errs.add(
                    &at,
                    format!(
                        "config {:?} is defined again with different properties (first at {first_at})",
                        u.name
                    ),
                ),
                Some(_) => {}
                None => {
                    seen.insert(u.name, (values, at));
                }
            }
        }
    }
}
