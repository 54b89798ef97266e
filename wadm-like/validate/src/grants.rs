//! A component's grants in `properties`: `env`, `preopens`, `allowed-outbound-hosts` and
//! `wall-clock` (see `trellis_lattice::grants`), each error at the entry that causes it.

use std::collections::BTreeMap;

use serde_json::Value;
use trellis_lattice::grants::{self, Outbound, Preopen};

use super::fields::{self, Errors, Obj};

/// The keys of `properties` that grant something.
pub(super) const KEYS: &[&str] = &["env", "preopens", "allowed-outbound-hosts", "wall-clock"];

/// What `properties` grants, as written.
#[derive(Default)]
pub(super) struct Granted {
    pub env: BTreeMap<String, String>,
    pub preopens: Vec<String>,
    pub allowed_outbound_hosts: Vec<String>,
    pub wall_clock: bool,
}

fn strings<'a>(obj: &Obj<'a>, key: &str, what: &str, errs: &mut Errors) -> Vec<(String, &'a str)> {
    let Some(v) = obj.get(key) else {
        return Vec::new();
    };
    let path = obj.at(key);
    let Some(items) = fields::list(v, &path, key, errs) else {
        return Vec::new();
    };
    items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| {
            let at = fields::index(&path, i);
            fields::string(item, &at, what, errs).map(|s| (at, s))
        })
        .collect()
}

pub(super) fn walk(obj: &Obj<'_>, errs: &mut Errors) -> Granted {
    let mut granted = Granted::default();
    if let Some(v) = obj.get("env") {
        match v {
            Value::Object(map) => {
                if map.len() > grants::MAX_ENV {
                    errs.add(
                        &obj.at("env"),
                        format!("at most {} environment variables", grants::MAX_ENV),
                    );
                }
                for (k, v) in map {
                    let at = fields::key(&obj.at("env"), k);
                    let value = match v {
                        Value::String(s) => s.clone(),
                        Value::Number(n) => n.to_string(),
                        Value::Bool(b) => b.to_string(),
                        _ => {
                            errs.add(&at, "an environment value must be a string");
                            continue;
                        }
                    };
                    let one = grants::Grants {
                        env: [(k.clone(), value.clone())].into(),
                        ..grants::Grants::default()
                    };
                    match one.check() {
                        Ok(()) => {
                            granted.env.insert(k.clone(), value);
                        }
                        Err(e) => errs.add(&at, e.to_string()),
                    }
                }
            }
            _ => errs.add(&obj.at("env"), "env must be a mapping of names to values"),
        }
    }
    let preopens = strings(obj, "preopens", "a preopen HOST[:GUEST][:ro|:rw]", errs);
    if preopens.len() > grants::MAX_PREOPENS {
        errs.add(
            &obj.at("preopens"),
            format!("at most {} preopens", grants::MAX_PREOPENS),
        );
    }
    for (at, p) in preopens {
        match Preopen::parse(p) {
            Ok(_) => granted.preopens.push(p.to_string()),
            Err(e) => errs.add(&at, e.to_string()),
        }
    }
    let outbound = strings(
        obj,
        "allowed-outbound-hosts",
        "a host [SCHEME://]HOST[:PORT]",
        errs,
    );
    if outbound.len() > grants::MAX_OUTBOUND {
        errs.add(
            &obj.at("allowed-outbound-hosts"),
            format!("at most {} allowed outbound hosts", grants::MAX_OUTBOUND),
        );
    }
    for (at, o) in outbound {
        match Outbound::parse(o) {
            Ok(_) => granted.allowed_outbound_hosts.push(o.to_string()),
            Err(e) => errs.add(&at, e.to_string()),
        }
    }
    match obj.get("wall-clock") {
        None => {}
        Some(Value::Bool(b)) => granted.wall_clock = *b,
        Some(_) => errs.add(&obj.at("wall-clock"), "wall-clock must be true or false"),
    }
    granted
}
