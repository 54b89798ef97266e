//! Where replicas go: weights, even spreading, ownership, eligibility and its reasons.

use std::collections::BTreeMap;

use trellis_lattice::manifest::annotations as ann;

use super::*;
use crate::scaler::testkit::*;
use crate::scaler::*;

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
    // Which host gets the extra one is a stable hash of the component and host ids, so
    // components that do not divide evenly do not all load the same host.
    let r = replicas(&o, "shop-web");
    let mut n: Vec<u32> = r.values().copied().collect();
    n.sort();
    assert_eq!((r.len(), n), (3, vec![2, 2, 3]));
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
    assert_eq!(provider_hosts(&o, "mqtt").len(), 2);
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
fn overlapping_spreads_settle_without_flapping() {
    let m = manifest(
        &WEIGHTED
            .replace("instances: 5", "instances: 6")
            .replace("{ tier: cloud }, weight: 80", "{ zone: a }")
            .replace("{ tier: edge }, weight: 20", "{ rack: r1 }"),
    );
    let mut o = lattice(vec![
        host("h1", &[("zone", "a")]),
        host("h2", &[("zone", "a"), ("rack", "r1")]),
        host("h3", &[("rack", "r1")]),
    ]);
    let (p, passes) = converge(&m, None, &mut o);
    assert!(passes <= 3, "{passes} passes");
    assert_eq!(replicas(&o, "shop-web").values().sum::<u32>(), 6);
    assert_eq!(p.state, AppState::Deployed);
    assert!(plan(&m, None, &o).commands.is_empty());
}

#[test]
fn chains_and_cycles_of_per_host_capabilities() {
    // app links to sensor (daemon, needs i2c hosts), sensor links to bus (daemon, rack r1).
    let m = manifest(
        "
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata: { name: lab }
spec:
  components:
    - name: app
      type: component
      properties: { image: file:///app.wasm }
      traits:
        - type: spreadscaler
          properties: { instances: 2 }
        - type: link
          properties: { target: { name: sensor }, namespace: lab, package: sensor, interfaces: [read] }
    - name: sensor
      type: component
      properties: { image: file:///sensor.wasm }
      traits:
        - type: daemonscaler
          properties: { spread: [ { name: i2c, requirements: { i2c: 'yes' } } ] }
        - type: link
          properties: { target: { name: bus }, namespace: lab, package: bus, interfaces: [io] }
    - name: bus
      type: capability
      properties: { image: builtin://bus }
      traits:
        - type: daemonscaler
          properties: { spread: [ { name: r1, requirements: { rack: r1 } } ] }
        - type: link
          properties: { target: { name: sensor }, namespace: lab, package: events, interfaces: [notify] }
",
    );
    let mut o = lattice(vec![
        host("h1", &[("i2c", "yes")]),
        host("h2", &[("i2c", "yes"), ("rack", "r1")]),
        host("h3", &[("rack", "r1")]),
    ]);
    let (p, _) = converge(&m, None, &mut o);
    assert_eq!(p.state, AppState::Deployed);
    // sensor needs i2c and a bus: only h2; app needs a sensor: only h2.
    assert_eq!(replicas(&o, "lab-sensor"), counts(&[("h2", 1)]));
    assert_eq!(replicas(&o, "lab-app"), counts(&[("h2", 2)]));
    // The bus → sensor link closes a cycle: the recursion stops at the back edge, and the bus
    // too must sit next to a sensor.
    assert_eq!(provider_hosts(&o, "lab-bus"), ["h2"]);
}
