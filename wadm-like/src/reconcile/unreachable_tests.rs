//! Hosts that stop answering without a goodbye (a leaf cut off from the hub): kept, sent
//! nothing, and moved away from only after the app's grace, and only what can move.

use std::time::Duration;

use super::exec::Backoff;
use super::planning::plan_app;
use crate::records::{AppRecord, Deployment};
use crate::scaler::testkit::{apply, host, lattice, manifest};
use crate::scaler::Command;

const EDGE_APP: &str = "
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata: { name: plant, annotations: { version: v1, unreachable-grace: 10m } }
spec:
  components:
    - name: reader
      type: component
      properties: { image: file:///reader.wasm }
      traits:
        - type: daemonscaler
          properties:
            instances: 1
            spread: [ { name: edge, requirements: { tier: edge } } ]
    - name: api
      type: component
      properties: { image: file:///api.wasm }
      traits:
        - type: spreadscaler
          properties: { instances: 1 }
";

fn record(yaml: &str) -> AppRecord {
    AppRecord {
        name: "plant".into(),
        versions: Vec::new(),
        deployment: Some(Deployment {
            version: "v1".into(),
            manifest: manifest(yaml),
            previous: None,
            at: chrono::Utc::now(),
        }),
        removal: None,
        generation: 1,
        history: Vec::new(),
    }
}

fn targets(commands: &[Command]) -> Vec<(String, u32)> {
    commands
        .iter()
        .filter_map(|c| match c {
            Command::ScaleComponent {
                host_id, replicas, ..
            } => Some((host_id.clone(), *replicas)),
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_edge_keeps_its_workload_until_the_grace_and_its_pinned_reader_for_good() {
    let record = record(EDGE_APP);
    let backoff = Backoff::default();
    let mut observed = lattice(vec![host("edge", &[("tier", "edge")]), host("cloud", &[])]);
    // Deployed: the reader on the edge; the one api replica lands somewhere.
    for _ in 0..3 {
        let p = plan_app(&record, &observed, &backoff);
        apply(&mut observed, "plant", &p.commands);
    }
    let api_host = observed
        .hosts
        .values()
        .find(|h| h.components.contains_key("plant-api"))
        .map(|h| h.id.clone())
        .expect("api placed");
    // Put the api on the edge, as if it had landed there.
    if api_host != "edge" {
        let moved = observed
            .hosts
            .get_mut(&api_host)
            .and_then(|h| h.components.remove("plant-api"));
        let edge = observed.hosts.get_mut("edge").expect("edge");
        edge.components
            .insert("plant-api".into(), moved.expect("api"));
    }
    assert!(plan_app(&record, &observed, &backoff).commands.is_empty());

    observed
        .unreachable
        .insert("edge".into(), tokio::time::Instant::now());
    let cut = plan_app(&record, &observed, &backoff);
    assert!(
        cut.commands.is_empty(),
        "nothing is moved or sent while within the grace: {:#?}",
        cut.commands
    );

    tokio::time::advance(Duration::from_secs(601)).await;
    let after = plan_app(&record, &observed, &backoff);
    assert_eq!(
        targets(&after.commands),
        vec![("cloud".to_string(), 1)],
        "after the grace the api replica is placed elsewhere, the reader is not: {:#?}",
        after.commands
    );
}

#[tokio::test(start_paused = true)]
async fn without_a_grace_replicas_move_at_once_and_the_lost_host_is_sent_nothing() {
    let yaml = EDGE_APP.replace(", unreachable-grace: 10m", "");
    let record = record(&yaml);
    let backoff = Backoff::default();
    let mut observed = lattice(vec![host("edge", &[("tier", "edge")])]);
    for _ in 0..3 {
        let p = plan_app(&record, &observed, &backoff);
        apply(&mut observed, "plant", &p.commands);
    }
    observed.add_host(host("cloud", &[]));
    observed
        .unreachable
        .insert("edge".into(), tokio::time::Instant::now());
    let p = plan_app(&record, &observed, &backoff);
    assert_eq!(targets(&p.commands), vec![("cloud".to_string(), 1)]);
    assert!(p.commands.iter().all(|c| c.host_id() != Some("edge")));
}

#[test]
fn an_unreadable_grace_is_refused_at_validation() {
    let yaml = EDGE_APP.replace("unreachable-grace: 10m", "unreachable-grace: soon");
    let err = trellis_validate::parse("app.yaml", &yaml)
        .expect_err("refused")
        .to_string();
    assert!(err.contains("unreachable-grace"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn a_removal_waits_for_an_unreachable_host_instead_of_forgetting_what_runs_there() {
    let mut record = record(EDGE_APP);
    let backoff = Backoff::default();
    let mut observed = lattice(vec![host("edge", &[("tier", "edge")]), host("cloud", &[])]);
    for _ in 0..3 {
        let p = plan_app(&record, &observed, &backoff);
        apply(&mut observed, "plant", &p.commands);
    }
    let deployed = record.deployment.take().expect("deployed");
    record.removal = Some(crate::records::Removal {
        manifests: vec![deployed.manifest],
        delete: true,
    });
    observed
        .unreachable
        .insert("edge".into(), tokio::time::Instant::now());
    let p = plan_app(&record, &observed, &backoff);
    assert!(
        p.finish.is_none(),
        "not finished while the edge still runs the reader"
    );
    assert!(p.commands.iter().all(|c| c.host_id() != Some("edge")));
    assert_eq!(
        p.status.status,
        trellis_lattice::app::AppState::Reconciling,
        "{:?}",
        p.status
    );
}
