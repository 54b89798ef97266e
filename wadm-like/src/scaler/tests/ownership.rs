//! An app changes and deletes only the config and links it created.

use super::*;

fn app(name: &str, bucket: &str) -> Manifest {
    manifest(&format!(
        "
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata: {{ name: {name} }}
spec:
  components:
    - name: counter
      type: component
      properties: {{ image: file:///counter.wasm }}
      traits:
        - type: spreadscaler
          properties: {{ instances: 1 }}
        - type: link
          properties:
            target:
              name: kv
              config: [ {{ name: counter-bucket, properties: {{ bucket: {bucket} }} }} ]
            namespace: wasi
            package: keyvalue
            interfaces: [atomics, store]
    - name: kv
      type: capability
      properties: {{ image: builtin://keyvalue-nats, id: kv }}
      traits:
        - type: daemonscaler
"
    ))
}

fn puts_config(p: &Plan) -> bool {
    p.commands
        .iter()
        .any(|c| matches!(c, Command::PutConfig { name, .. } if name == "counter-bucket"))
}

#[test]
fn a_config_put_by_hand_is_neither_overwritten_nor_deleted() {
    let m = app("counter", "counter");
    let mut o = lattice(vec![host("h1", &[])]);
    let by_hand = BTreeMap::from([("bucket".to_string(), "counters".to_string())]);
    o.configs.insert("counter-bucket".into(), by_hand.clone());

    let p = plan(&m, None, &o);
    assert!(!puts_config(&p), "{:#?}", p.commands);
    let s = status(&p, "config", "counter");
    assert_eq!(s.state, ScalerState::Failed);
    assert!(
        s.reason
            .as_deref()
            .unwrap()
            .contains("config counter-bucket exists and was not created by application counter"),
        "{s:?}"
    );
    let (p, _) = converge(&m, None, &mut o);
    assert_eq!(p.state, AppState::Failed);
    assert_eq!(o.configs["counter-bucket"], by_hand, "never overwritten");

    let cmds = plan_undeploy(&m, &o);
    assert!(
        !cmds
            .iter()
            .any(|c| matches!(c, Command::DeleteConfig { .. })),
        "{cmds:#?}"
    );
}

#[test]
fn what_the_app_created_it_owns_changes_and_removes() {
    let m = app("counter", "counter");
    let mut o = lattice(vec![host("h1", &[])]);
    let (p, _) = converge(&m, None, &mut o);
    assert_eq!(p.state, AppState::Deployed);
    assert!(o.owns(&Claim::Config("counter-bucket".into()), "counter"));
    // A new version changes its own config.
    let v2 = app("counter", "counter-v2");
    let (p, _) = converge(&v2, Some(&m), &mut o);
    assert_eq!(p.state, AppState::Deployed);
    assert_eq!(o.configs["counter-bucket"]["bucket"], "counter-v2");
    let cmds = plan_undeploy(&v2, &o);
    assert!(cmds
        .iter()
        .any(|c| matches!(c, Command::DeleteConfig { name } if name == "counter-bucket")));
    assert!(cmds.iter().any(|c| matches!(c, Command::DeleteLink(_))));
}

#[test]
fn two_apps_never_fight_over_one_name() {
    let first = app("counter", "a");
    let second = app("tally", "b");
    let mut o = lattice(vec![host("h1", &[])]);
    converge(&first, None, &mut o);
    let p = plan(&second, None, &o);
    assert!(!puts_config(&p));
    let s = status(&p, "config", "counter");
    assert_eq!(s.state, ScalerState::Failed);
    assert!(
        s.reason
            .as_deref()
            .unwrap()
            .contains("belongs to application counter"),
        "{s:?}"
    );
    assert_eq!(o.configs["counter-bucket"]["bucket"], "a");
    assert!(claims(&second).contains(&Claim::Config("counter-bucket".into())));
}
