use super::*;

const YAML_AS_JSON: &str = r#"{
  "apiVersion": "core.oam.dev/v1beta1",
  "kind": "Application",
  "metadata": { "name": "counter", "annotations": { "version": "v1", "description": "counts" } },
  "spec": { "components": [
    { "name": "counter", "type": "component",
      "properties": { "image": "file:///c.wasm" },
      "traits": [
        { "type": "spreadscaler", "properties": { "instances": 5,
            "spread": [ { "name": "a", "requirements": { "tier": "edge" }, "weight": 80 } ] } },
        { "type": "link", "properties": {
            "target": { "name": "kv", "config": [ { "properties": { "bucket": "b" } } ] },
            "namespace": "wasi", "package": "keyvalue", "interfaces": ["atomics"] } }
      ] },
    { "name": "kv", "type": "capability", "properties": { "image": "builtin://keyvalue-nats", "id": "kv",
      "config": [ { "name": "shared" }, { "properties": { "x": "1" } } ] },
      "traits": [ { "type": "daemonscaler", "properties": {} } ] }
  ] }
}"#;

#[test]
fn round_trips_oam_field_names() {
    let m: Manifest = serde_json::from_str(YAML_AS_JSON).unwrap();
    assert_eq!(m.version(), Some("v1"));
    assert_eq!(m.description(), Some("counts"));
    let counter = &m.spec.components[0];
    assert_eq!(counter.kind, ComponentKind::Component);
    assert!(matches!(counter.scaler(), Some(Trait::SpreadScaler(s)) if s.instances == 5));
    let kv = &m.spec.components[1];
    assert!(matches!(kv.scaler(), Some(Trait::DaemonScaler(d)) if d.instances == 1));
    let (_, link) = counter.links().next().unwrap();
    assert_eq!(link.link_name(), "default");
    assert_eq!(link.wit_package(), "wasi:keyvalue");

    let json = serde_json::to_value(&m).unwrap();
    assert_eq!(json["apiVersion"], API_VERSION);
    assert_eq!(json["spec"]["components"][1]["type"], "capability");
    assert_eq!(
        json["spec"]["components"][0]["traits"][0]["type"],
        "spreadscaler"
    );
    let back: Manifest = serde_json::from_value(json).unwrap();
    assert_eq!(back, m);
}

#[test]
fn ids_and_config_names() {
    let m: Manifest = serde_json::from_str(YAML_AS_JSON).unwrap();
    assert_eq!(m.component_id(&m.spec.components[0]), "counter-counter");
    assert_eq!(m.component_id(&m.spec.components[1]), "kv");
    assert_eq!(
        m.config_names(
            &m.spec.components[0],
            ConfigSite::LinkTarget { trait_index: 1 }
        ),
        ["counter-counter-1"]
    );
    let uses = m.config_uses(&m.spec.components[1]);
    let names: Vec<_> = uses.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(names, ["shared", "counter-kv-1"]);
    assert!(uses[0].properties.is_none() && uses[1].properties.is_some());
}

#[test]
fn sanitizes_ids() {
    assert_eq!(sanitize_id("my app-HTTP server"), "my-app-HTTP-server");
    assert_eq!(sanitize_id("a..b//c"), "a-b-c");
    assert_eq!(sanitize_id("..."), "_");
    assert_eq!(sanitize_id(&"x".repeat(300)).len(), MAX_ID_LEN);
    assert!(crate::id::validate_component_id(&sanitize_id("ünïcode name!")).is_ok());
}
