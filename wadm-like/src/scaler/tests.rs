//! Scaler rules on hand-built lattices; `testkit::converge` plays the hosts.

use std::collections::BTreeMap;

use trellis_lattice::inventory::ProviderHealth;
use trellis_lattice::manifest::annotations as ann;

use super::testkit::*;
use super::*;
use crate::model::{ObservedComponent, ObservedProvider};

const WEIGHTED: &str = "
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata: { name: shop, annotations: { version: v1 } }
spec:
  components:
    - name: web
      type: component
      properties: { image: file:///web-v1.wasm }
      traits:
        - type: spreadscaler
          properties:
            instances: 5
            spread:
              - { name: cloud, requirements: { tier: cloud }, weight: 80 }
              - { name: edge, requirements: { tier: edge }, weight: 20 }
";

fn three_tiers() -> Observed {
    lattice(vec![
        host("h1", &[("tier", "cloud")]),
        host("h2", &[("tier", "gateway")]),
        host("h3", &[("tier", "edge")]),
    ])
}

fn status<'a>(p: &'a Plan, kind: &str, component: &str) -> &'a ScalerStatus {
    p.scalers
        .iter()
        .find(|s| s.kind == kind && s.component == component)
        .unwrap_or_else(|| panic!("no {kind} status for {component}: {:#?}", p.scalers))
}

fn unmanaged(image: &str, replicas: u32) -> ObservedComponent {
    ObservedComponent {
        image: image.into(),
        replicas,
        annotations: BTreeMap::new(),
    }
}

#[test]
fn weights_80_20_of_5_give_4_and_1() {
    let m = manifest(WEIGHTED);
    let mut o = three_tiers();
    let first = plan(&m, None, &o);
    assert_eq!(first.state, AppState::Reconciling);
    assert_eq!(
        status(&first, "spreadscaler", "web").placements,
        counts(&[("h1", 4), ("h3", 1)])
    );
    let (done, passes) = converge(&m, None, &mut o);
    assert_eq!(passes, 1);
    assert_eq!(replicas(&o, "shop-web"), counts(&[("h1", 4), ("h3", 1)]));
    assert_eq!(done.state, AppState::Deployed);
    let s = status(&done, "spreadscaler", "web");
    assert_eq!(
        (s.state, s.desired, s.actual),
        (ScalerState::Deployed, 5, 5)
    );
}

#[test]
fn seven_over_three_hosts_is_3_2_2_and_stays_put() {
    let m = manifest(&WEIGHTED.replace("instances: 5", "instances: 7").replace(
        "            spread:
              - { name: cloud, requirements: { tier: cloud }, weight: 80 }
              - { name: edge, requirements: { tier: edge }, weight: 20 }
",
        "",
    ));
    let mut o = three_tiers();
    converge(&m, None, &mut o);
    assert_eq!(
        replicas(&o, "shop-web"),
        counts(&[("h1", 3), ("h2", 2), ("h3", 2)])
    );
    // Stability: the same lattice gives the same answer, and a fourth host takes only the
    // surplus of the fullest host.
    assert!(plan(&m, None, &o).commands.is_empty());
    o.add_host(host("h4", &[]));
    let p = plan(&m, None, &o);
    assert_eq!(
        status(&p, "spreadscaler", "web").placements,
        counts(&[("h1", 2), ("h2", 2), ("h3", 2), ("h4", 1)])
    );
    converge(&m, None, &mut o);
    assert_eq!(
        replicas(&o, "shop-web"),
        counts(&[("h1", 2), ("h2", 2), ("h3", 2), ("h4", 1)])
    );
}

#[test]
fn converged_lattice_yields_no_commands() {
    let m = manifest(COUNTER);
    let mut o = three_tiers();
    let (p, passes) = converge(&m, None, &mut o);
    assert!(passes >= 1);
    assert!(p.commands.is_empty());
    assert_eq!(p.state, AppState::Deployed);
    for s in &p.scalers {
        assert_eq!(s.state, ScalerState::Deployed, "{s:?}");
        assert_eq!(s.actual, s.desired, "{s:?}");
    }
    // Annotations the host adds of its own accord do not cause churn.
    for h in o.hosts.values_mut() {
        for c in h.components.values_mut() {
            c.annotations
                .insert("host.example/extra".into(), "1".into());
        }
    }
    assert!(plan(&m, None, &o).commands.is_empty());
}

const COUNTER: &str = "
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata: { name: counter, annotations: { version: v1 } }
spec:
  components:
    - name: counter
      type: component
      properties: { image: file:///counter.wasm }
      traits:
        - type: spreadscaler
          properties: { instances: 4 }
        - type: link
          properties:
            target:
              name: kv
              config: [ { properties: { bucket: counts } } ]
            namespace: wasi
            package: keyvalue
            interfaces: [atomics, store]
    - name: kv
      type: capability
      properties: { image: builtin://keyvalue-nats, id: kv }
      traits:
        - type: daemonscaler
";

#[test]
fn counter_app_puts_config_provider_component_and_link_in_order() {
    let m = manifest(COUNTER);
    let o = three_tiers();
    let p = plan(&m, None, &o);
    let phases: Vec<u8> = p.commands.iter().map(Command::phase).collect();
    assert!(phases.windows(2).all(|w| w[0] <= w[1]), "{:#?}", p.commands);
    assert!(matches!(&p.commands[0], Command::PutConfig { name, values }
        if name == "counter-counter-1" && values["bucket"] == "counts"));
    let starts = p
        .commands
        .iter()
        .filter(|c| matches!(c, Command::StartProvider { .. }))
        .count();
    assert_eq!(starts, 3);
    let Some(Command::PutLink(link)) = p.commands.iter().find(|c| matches!(c, Command::PutLink(_)))
    else {
        panic!("no link in {:#?}", p.commands);
    };
    assert_eq!(
        (
            link.source_id.as_str(),
            link.target_id.as_str(),
            link.name.as_str()
        ),
        ("counter-counter", "kv", "default")
    );
    assert_eq!(link.target_config, ["counter-counter-1"]);
    let Some(Command::ScaleComponent { annotations, .. }) = p
        .commands
        .iter()
        .find(|c| matches!(c, Command::ScaleComponent { .. }))
    else {
        panic!("no scale in {:#?}", p.commands);
    };
    assert_eq!(annotations[ann::MANAGED_BY], "trellis-deploy");
    assert_eq!(annotations[ann::APP], "counter");
    assert_eq!(annotations[ann::APP_VERSION], "v1");
    assert_eq!(annotations[ann::COMPONENT], "counter");
}

#[test]
fn unmanaged_copy_with_our_id_is_not_taken_over() {
    let m = manifest(WEIGHTED);
    let mut o = three_tiers();
    o.hosts
        .get_mut("h1")
        .unwrap()
        .components
        .insert("shop-web".into(), unmanaged("file:///mine.wasm", 1));
    let p = plan(&m, None, &o);
    assert!(p.commands.is_empty(), "{:#?}", p.commands);
    assert_eq!(p.state, AppState::Failed);
    let s = status(&p, "spreadscaler", "web");
    assert_eq!(s.state, ScalerState::Failed);
    let reason = s.reason.as_deref().unwrap();
    assert!(
        reason.contains("component shop-web already runs on host h1 and it is not managed by trellis-deploy; refusing to take it over"),
        "{reason}"
    );
    // Another app's copy is refused the same way.
    let other = BTreeMap::from([
        (
            ann::MANAGED_BY.to_string(),
            ann::MANAGED_BY_VALUE.to_string(),
        ),
        (ann::APP.to_string(), "blog".to_string()),
    ]);
    o.hosts
        .get_mut("h1")
        .unwrap()
        .components
        .get_mut("shop-web")
        .unwrap()
        .annotations = other;
    let p = plan(&m, None, &o);
    assert!(p.commands.is_empty());
    assert!(status(&p, "spreadscaler", "web")
        .reason
        .as_deref()
        .unwrap()
        .contains("it belongs to app blog"));
}

const EDGE_PROVIDER: &str = "
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata: { name: sense }
spec:
  components:
    - name: mqtt
      type: capability
      properties: { image: builtin://mqtt, id: mqtt }
      traits:
        - type: daemonscaler
          properties:
            spread: [ { name: edge, requirements: { tier: edge } } ]
";

#[test]
fn daemonscaler_follows_label_changes() {
    let m = manifest(EDGE_PROVIDER);
    let mut o = three_tiers();
    converge(&m, None, &mut o);
    assert_eq!(provider_hosts(&o, "mqtt"), ["h3"]);
    // h2 becomes an edge host and h3 stops being one.
    o.hosts
        .get_mut("h2")
        .unwrap()
        .labels
        .insert("tier".into(), "edge".into());
    o.hosts
        .get_mut("h3")
        .unwrap()
        .labels
        .insert("tier".into(), "cloud".into());
    let p = plan(&m, None, &o);
    assert_eq!(
        p.commands,
        [
            Command::StartProvider {
                host_id: "h2".into(),
                provider_id: "mqtt".into(),
                image: "builtin://mqtt".into(),
                config: vec![],
                annotations: managed_annotations(&m, &m.spec.components[0]),
            },
            Command::StopProvider {
                host_id: "h3".into(),
                provider_id: "mqtt".into()
            },
        ]
    );
    converge(&m, None, &mut o);
    assert_eq!(provider_hosts(&o, "mqtt"), ["h2"]);
    // A host that joins later and matches gets one too.
    o.add_host(host("h9", &[("tier", "edge")]));
    converge(&m, None, &mut o);
    assert_eq!(provider_hosts(&o, "mqtt"), ["h2", "h9"]);
}

#[test]
fn daemonscaled_component_runs_instances_per_matching_host() {
    let m = manifest(
        &EDGE_PROVIDER
            .replace("type: capability", "type: component")
            .replace("builtin://mqtt", "file:///agent.wasm")
            .replace("spread:", "instances: 3\n            spread:"),
    );
    let mut o = three_tiers();
    o.add_host(host("h4", &[("tier", "edge")]));
    let (p, _) = converge(&m, None, &mut o);
    assert_eq!(replicas(&o, "mqtt"), counts(&[("h3", 3), ("h4", 3)]));
    let s = status(&p, "daemonscaler", "mqtt");
    assert_eq!(
        (s.desired, s.actual, s.state),
        (6, 6, ScalerState::Deployed)
    );
}

const GPIO: &str = "
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata: { name: pins }
spec:
  components:
    - name: blinker
      type: component
      properties: { image: file:///blinker.wasm }
      traits:
        - type: spreadscaler
          properties:
            instances: 2
            spread: [ { name: edge, requirements: { tier: edge } } ]
        - type: link
          properties:
            target: { name: gpio }
            namespace: trellis
            package: gpio
            interfaces: [pins]
    - name: gpio
      type: capability
      properties: { image: builtin://gpio, id: gpio }
      traits:
        - type: daemonscaler
          properties:
            spread: [ { name: boards, requirements: { trellis.gpio: 'true' } } ]
";

#[test]
fn components_land_only_next_to_per_host_capabilities() {
    let m = manifest(GPIO);
    let mut o = lattice(vec![
        host("h1", &[("tier", "edge")]),
        host("h2", &[("tier", "edge"), ("trellis.gpio", "true")]),
        host("h3", &[("tier", "cloud"), ("trellis.gpio", "true")]),
    ]);
    converge(&m, None, &mut o);
    // Both replicas on h2: the only edge host with GPIO.
    assert_eq!(replicas(&o, "pins-blinker"), counts(&[("h2", 2)]));
    assert_eq!(provider_hosts(&o, "gpio"), ["h2", "h3"]);
}

#[test]
fn nothing_fits_explains_per_spread() {
    let m = manifest(GPIO);
    let o = lattice(vec![
        host("h1", &[("tier", "cloud"), ("trellis.gpio", "true")]),
        host("h2", &[("tier", "cloud")]),
        host("h3", &[("tier", "gateway")]),
    ]);
    let p = plan(&m, None, &o);
    let s = status(&p, "spreadscaler", "blinker");
    assert_eq!(s.state, ScalerState::Failed);
    assert_eq!(
        s.reason.as_deref(),
        Some("spread edge: 0 of 3 hosts match requirements {tier=edge}; 2 lack trellis:gpio")
    );
    assert_eq!(p.state, AppState::Failed);

    // The gpio provider itself, with no GPIO host at all.
    let o = lattice(vec![host("h1", &[("tier", "edge")]), host("h2", &[])]);
    let p = plan(&m, None, &o);
    let s = status(&p, "daemonscaler", "gpio");
    assert_eq!(
        s.reason.as_deref(),
        Some("no host fits: spread boards: 0 of 2 hosts match requirements {trellis.gpio=true}")
    );
    let s = status(&p, "spreadscaler", "blinker");
    assert_eq!(
        s.reason.as_deref(),
        Some("spread edge: 1 of 2 hosts match requirements {tier=edge}; 2 lack trellis:gpio")
    );
    let p = plan(&m, None, &Observed::default());
    assert_eq!(
        status(&p, "spreadscaler", "blinker").reason.as_deref(),
        Some("spread edge: no hosts in the lattice")
    );
}

#[test]
fn link_to_a_target_that_can_run_nowhere_fails_the_source() {
    let m = manifest(
        &COUNTER.replace(
            "      traits:\n        - type: daemonscaler\n",
            "      traits:\n        - type: spreadscaler\n          properties:\n            instances: 1\n            spread: [ { name: moon, requirements: { tier: moon } } ]\n",
        ),
    );
    let p = plan(&m, None, &three_tiers());
    let s = status(&p, "spreadscaler", "counter");
    assert_eq!(s.state, ScalerState::Failed);
    assert_eq!(
        s.reason.as_deref(),
        Some("link target kv (wasi:keyvalue) has no eligible host")
    );
    // It is still placed, so it serves as soon as the target can run.
    assert_eq!(s.placements.values().sum::<u32>(), 4);
}

#[test]
fn spreadscaled_capability_runs_once_per_host() {
    let m = manifest(&EDGE_PROVIDER.replace(
        "        - type: daemonscaler\n          properties:\n            spread: [ { name: edge, requirements: { tier: edge } } ]\n",
        "        - type: spreadscaler\n          properties: { instances: 2 }\n",
    ));
    let mut o = three_tiers();
    converge(&m, None, &mut o);
    assert_eq!(provider_hosts(&o, "mqtt"), ["h1", "h2"]);
    let m = manifest(&EDGE_PROVIDER.replace(
        "        - type: daemonscaler\n          properties:\n            spread: [ { name: edge, requirements: { tier: edge } } ]\n",
        "        - type: spreadscaler\n          properties: { instances: 5 }\n",
    ));
    let (p, _) = converge(&m, None, &mut o);
    assert_eq!(provider_hosts(&o, "mqtt"), ["h1", "h2", "h3"]);
    let s = status(&p, "spreadscaler", "mqtt");
    assert_eq!(s.state, ScalerState::Failed);
    assert!(
        s.reason
            .as_deref()
            .unwrap()
            .contains("5 wanted but only 3 eligible hosts"),
        "{s:?}"
    );
}

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
            annotations: managed_annotations(&m, &m.spec.components[0]),
        }]
    );
    assert!(status(&p, "spreadscaler", "web")
        .reason
        .as_deref()
        .unwrap()
        .contains("old copies stop once"));
    apply(&mut o, &p.commands);
    let p = plan(&m, None, &o);
    assert!(
        matches!(&p.commands[..], [Command::ScaleComponent { host_id, replicas: 0, .. }] if host_id == "h3")
    );
    apply(&mut o, &p.commands);
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
    // 80/20 of 1 → cloud 1, edge 0; the cloud host with the most keeps it.
    assert_eq!(replicas(&o, "shop-web"), counts(&[("a", 1)]));
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
    apply(&mut o, &p.commands);
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
    apply(&mut o, &p.commands);
    let p = plan(&v2, Some(&v1), &o);
    assert_eq!(p.commands.len(), 2);
    assert!(p.commands.iter().all(|c| matches!(c, Command::ScaleComponent { component_id, replicas: 0, .. } if component_id == "shop-web")));
    apply(&mut o, &p.commands);
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
    apply(&mut o, &cmds);
    assert_eq!(o, before);
    assert!(plan_undeploy(&m, &o).is_empty());
}

#[test]
fn no_hosts_means_failed_with_reason() {
    let p = plan(&manifest(WEIGHTED), None, &Observed::default());
    assert_eq!(p.state, AppState::Failed);
    assert!(p.commands.is_empty());
    let s = status(&p, "spreadscaler", "web");
    assert_eq!(
        s.reason.as_deref(),
        Some("spread cloud: no hosts in the lattice; spread edge: no hosts in the lattice")
    );
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
