//! Versions and lifetimes: upgrades, retargets, removals, health, undeploy, storage shape.

use std::collections::BTreeMap;

use trellis_lattice::inventory::ProviderHealth;
use trellis_lattice::manifest::annotations as ann;

use super::*;
use crate::model::ObservedProvider;
use crate::scaler::testkit::*;
use crate::scaler::*;

#[test]
fn upgrade_swaps_images_in_place_and_updates_annotations() {
    let v1 = manifest(WEIGHTED);
    let mut o = three_tiers();
    converge(&v1, None, &mut o);
    let v2 = manifest(
        &WEIGHTED
            .replace("web-v1", "web-v2")
            .replace("version: v1", "version: v2"),
    );
    let p = plan(&v2, Some(&v1), &o);
    // New image on the same hosts; nothing stops.
    assert_eq!(p.commands.len(), 2, "{:#?}", p.commands);
    for c in &p.commands {
        let Command::ScaleComponent {
            image,
            replicas,
            annotations,
            ..
        } = c
        else {
            panic!("unexpected {c:?}");
        };
        assert_eq!(image, "file:///web-v2.wasm");
        assert!(*replicas > 0);
        assert_eq!(annotations[ann::APP_VERSION], "v2");
    }
    assert_eq!(status(&p, "spreadscaler", "web").actual, 0);
    let (p, _) = converge(&v2, Some(&v1), &mut o);
    assert_eq!(p.state, AppState::Deployed);
    assert_eq!(
        o.hosts["h1"].components["shop-web"].annotations[ann::APP_VERSION],
        "v2"
    );
}

#[test]
fn moving_replicas_starts_new_before_stopping_old() {
    let m = manifest(WEIGHTED);
    let mut o = three_tiers();
    converge(&m, None, &mut o);
    // The edge host becomes a gateway and the gateway an edge host.
    o.hosts
        .get_mut("h3")
        .unwrap()
        .labels
        .insert("tier".into(), "gateway".into());
    o.hosts
        .get_mut("h2")
        .unwrap()
        .labels
        .insert("tier".into(), "edge".into());
    let p = plan(&m, None, &o);
    assert_eq!(
        p.commands,
        [Command::ScaleComponent {
            host_id: "h2".into(),
            component_id: "shop-web".into(),
            image: "file:///web-v1.wasm".into(),
            replicas: 1,
            config: Vec::new(),
            annotations: managed_annotations(&m, &m.spec.components[0]),
            grants: Default::default(),
            issuer: None,
        }]
    );
    assert!(status(&p, "spreadscaler", "web")
        .reason
        .as_deref()
        .unwrap()
        .contains("old copies stop once"));
    apply(&mut o, m.name(), &p.commands);
    let p = plan(&m, None, &o);
    assert!(
        matches!(&p.commands[..], [Command::ScaleComponent { host_id, replicas: 0, .. }] if host_id == "h3")
    );
    apply(&mut o, m.name(), &p.commands);
    assert_eq!(replicas(&o, "shop-web"), counts(&[("h1", 4), ("h2", 1)]));
}

#[test]
fn scaling_down_stops_surplus_at_once() {
    let m = manifest(&WEIGHTED.replace("instances: 5", "instances: 10"));
    let mut o = lattice(vec![
        host("a", &[("tier", "cloud")]),
        host("b", &[("tier", "cloud")]),
        host("c", &[("tier", "edge")]),
    ]);
    converge(&m, None, &mut o);
    assert_eq!(
        replicas(&o, "shop-web"),
        counts(&[("a", 4), ("b", 4), ("c", 2)])
    );
    let m = manifest(&WEIGHTED.replace("instances: 5", "instances: 1"));
    let (_, passes) = converge(&m, None, &mut o);
    assert_eq!(passes, 1);
    // 80/20 of 1 → cloud 1, edge 0; one of the cloud hosts (both ran 4) keeps it.
    let r = replicas(&o, "shop-web");
    assert!(
        r == counts(&[("a", 1)]) || r == counts(&[("b", 1)]),
        "{r:?}"
    );
}

#[test]
fn retargets_a_link_only_once_the_new_target_runs() {
    let v1 = manifest(COUNTER);
    let mut o = three_tiers();
    converge(&v1, None, &mut o);
    let v2 = manifest(
        &COUNTER
            .replace("id: kv }", "id: kv-redis }")
            .replace("keyvalue-nats", "keyvalue-redis"),
    );
    let p = plan(&v2, Some(&v1), &o);
    assert!(!p
        .commands
        .iter()
        .any(|c| matches!(c, Command::PutLink(_) | Command::StopProvider { .. })));
    assert!(status(&p, "link", "counter")
        .reason
        .as_deref()
        .unwrap()
        .contains("waiting for kv-redis to run"));
    apply(&mut o, v2.name(), &p.commands);
    let p = plan(&v2, Some(&v1), &o);
    // One put retargets; the old providers stop after it.
    let link_at = p
        .commands
        .iter()
        .position(|c| matches!(c, Command::PutLink(l) if l.target_id == "kv-redis"));
    let first_stop = p.commands.iter().position(
        |c| matches!(c, Command::StopProvider { provider_id, .. } if provider_id == "kv"),
    );
    assert!(link_at.unwrap() < first_stop.unwrap(), "{:#?}", p.commands);
    assert!(!p
        .commands
        .iter()
        .any(|c| matches!(c, Command::DeleteLink(_))));
    let (p, _) = converge(&v2, Some(&v1), &mut o);
    assert_eq!(p.state, AppState::Deployed);
    assert!(provider_hosts(&o, "kv").is_empty());
    assert_eq!(provider_hosts(&o, "kv-redis").len(), 3);
    assert_eq!(o.links.len(), 1);
}

#[test]
fn removes_links_and_config_the_new_version_dropped() {
    let v1 = manifest(COUNTER);
    let mut o = three_tiers();
    converge(&v1, None, &mut o);
    // Someone else's config and link stay.
    o.configs.insert("theirs".into(), BTreeMap::new());
    let mut theirs = o.links[0].clone();
    theirs.source_id = "other".into();
    o.links.push(theirs);
    let without_link = format!(
        "{}{}",
        &COUNTER[..COUNTER.find("        - type: link").unwrap()],
        &COUNTER[COUNTER.find("    - name: kv").unwrap()..]
    );
    let v2 = manifest(&without_link);
    let (_, passes) = converge(&v2, Some(&v1), &mut o);
    assert_eq!(passes, 1);
    assert_eq!(o.links.len(), 1);
    assert_eq!(o.links[0].source_id, "other");
    assert_eq!(o.configs.keys().collect::<Vec<_>>(), ["theirs"]);
}

#[test]
fn removed_component_is_stopped_after_the_new_one_runs() {
    let v1 = manifest(WEIGHTED);
    let mut o = three_tiers();
    converge(&v1, None, &mut o);
    let v2 = manifest(&WEIGHTED.replace("name: web", "name: storefront"));
    let p = plan(&v2, Some(&v1), &o);
    assert!(p.commands.iter().all(|c| c.is_start()), "{:#?}", p.commands);
    apply(&mut o, v2.name(), &p.commands);
    let p = plan(&v2, Some(&v1), &o);
    assert_eq!(p.commands.len(), 2);
    assert!(p.commands.iter().all(|c| matches!(c, Command::ScaleComponent { component_id, replicas: 0, .. } if component_id == "shop-web")));
    apply(&mut o, v2.name(), &p.commands);
    assert!(replicas(&o, "shop-web").is_empty());
    assert_eq!(replicas(&o, "shop-storefront").values().sum::<u32>(), 5);
}

#[test]
fn provider_health_shapes_the_state() {
    let m = manifest(EDGE_PROVIDER);
    let mut o = three_tiers();
    converge(&m, None, &mut o);
    let set = |o: &mut Observed, health| {
        o.hosts
            .get_mut("h3")
            .unwrap()
            .providers
            .get_mut("mqtt")
            .unwrap()
            .health = health
    };
    set(&mut o, ProviderHealth::Starting);
    let p = plan(&m, None, &o);
    assert!(p.commands.is_empty());
    assert_eq!(
        (p.state, status(&p, "daemonscaler", "mqtt").actual),
        (AppState::Reconciling, 0)
    );
    set(&mut o, ProviderHealth::Unhealthy);
    let p = plan(&m, None, &o);
    assert!(p.commands.is_empty());
    assert_eq!(p.state, AppState::Failed);
    assert!(status(&p, "daemonscaler", "mqtt")
        .reason
        .as_deref()
        .unwrap()
        .contains("unhealthy on host h3"));
}

#[test]
fn provider_image_change_restarts_it_over_two_passes() {
    let v1 = manifest(EDGE_PROVIDER);
    let mut o = three_tiers();
    converge(&v1, None, &mut o);
    let v2 = manifest(&EDGE_PROVIDER.replace("builtin://mqtt", "builtin://mqtt5"));
    let p = plan(&v2, Some(&v1), &o);
    assert_eq!(
        p.commands,
        [Command::StopProvider {
            host_id: "h3".into(),
            provider_id: "mqtt".into()
        }]
    );
    let (_, passes) = converge(&v2, Some(&v1), &mut o);
    assert_eq!(passes, 2);
    assert_eq!(o.hosts["h3"].providers["mqtt"].image, "builtin://mqtt5");
}

#[test]
fn missing_named_config_fails_with_reason() {
    let m = manifest(&COUNTER.replace(
        "config: [ { properties: { bucket: counts } } ]",
        "config: [ { name: shared-bucket } ]",
    ));
    let mut o = three_tiers();
    let p = plan(&m, None, &o);
    let s = status(&p, "config", "counter");
    assert_eq!(s.state, ScalerState::Failed);
    assert!(s
        .reason
        .as_deref()
        .unwrap()
        .contains("named config shared-bucket does not exist"));
    o.configs.insert(
        "shared-bucket".into(),
        BTreeMap::from([("bucket".into(), "b".into())]),
    );
    let (p, _) = converge(&m, None, &mut o);
    assert_eq!(p.state, AppState::Deployed);
    // A referenced config is never owned: undeploy keeps it.
    let cmds = plan_undeploy(&m, &o);
    assert!(!cmds
        .iter()
        .any(|c| matches!(c, Command::DeleteConfig { .. })));
}

#[test]
fn undeploy_removes_exactly_what_the_app_placed() {
    let m = manifest(COUNTER);
    let mut o = three_tiers();
    // Before deploy: an unmanaged component, another app's provider, someone's config/link.
    let h1 = o.hosts.get_mut("h1").unwrap();
    h1.components
        .insert("greeter".into(), unmanaged("file:///greeter.wasm", 1));
    h1.providers.insert(
        "blog-kv".into(),
        ObservedProvider {
            image: "builtin://keyvalue-nats".into(),
            health: ProviderHealth::Healthy,
            annotations: BTreeMap::from([
                (
                    ann::MANAGED_BY.to_string(),
                    ann::MANAGED_BY_VALUE.to_string(),
                ),
                (ann::APP.to_string(), "blog".to_string()),
            ]),
        },
    );
    o.configs.insert(
        "site".into(),
        BTreeMap::from([("title".into(), "x".into())]),
    );
    let before = o.clone();
    converge(&m, None, &mut o);
    assert_ne!(o, before);
    let cmds = plan_undeploy(&m, &o);
    apply(&mut o, m.name(), &cmds);
    assert_eq!(o, before);
    assert!(plan_undeploy(&m, &o).is_empty());
}

#[test]
fn commands_and_plans_serialize_for_storage() {
    let m = manifest(COUNTER);
    let p = plan(&m, None, &three_tiers());
    let json = serde_json::to_value(&p).unwrap();
    assert_eq!(json["state"], "reconciling");
    assert_eq!(json["commands"][0]["command"], "put_config");
    assert!(json["commands"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["command"] == "put_link" && c["source_id"] == "counter-counter"));
    let back: Plan = serde_json::from_value(json).unwrap();
    assert_eq!(back, p);
}

#[test]
fn conflicting_source_is_not_linked() {
    let m = manifest(COUNTER);
    let mut o = three_tiers();
    o.hosts
        .get_mut("h2")
        .unwrap()
        .components
        .insert("counter-counter".into(), unmanaged("file:///other.wasm", 1));
    let p = plan(&m, None, &o);
    assert!(!p.commands.iter().any(|c| matches!(c, Command::PutLink(_))));
    let s = status(&p, "link", "counter");
    assert_eq!(s.state, ScalerState::Failed);
    assert!(s
        .reason
        .as_deref()
        .unwrap()
        .starts_with("not linking: component counter-counter already runs on host h2"));
}

#[test]
fn a_component_is_started_with_its_config_names_in_order() {
    let m = manifest(&WEIGHTED.replace(
        "properties: { image: file:///web-v1.wasm }",
        "properties: { image: file:///web-v1.wasm, config: [ { name: shared }, { properties: { greeting: hi } } ] }",
    ));
    let mut o = three_tiers();
    o.configs.insert("shared".into(), BTreeMap::new());
    let mut starts = Vec::new();
    for _ in 0..5 {
        let p = plan(&m, None, &o);
        if p.commands.is_empty() {
            break;
        }
        starts.extend(p.commands.iter().filter_map(|c| match c {
            Command::ScaleComponent {
                replicas, config, ..
            } if *replicas > 0 => Some(config.clone()),
            _ => None,
        }));
        apply(&mut o, m.name(), &p.commands);
    }
    assert!(!starts.is_empty(), "the component was never started");
    for config in starts {
        // The named config first, then the inline one the app owns.
        assert_eq!(config, ["shared", "shop-web-1"]);
    }
}
