//! Scaler rules on hand-built lattices; `testkit::converge` plays the hosts.
//!
//! - [`placing`]: where replicas go, ownership, eligibility and its explanations.
//! - [`lifecycle`]: upgrades, retargets, removals, health, undeploy, storage shape.
//! - [`ownership`]: config and links an app did not create are not its to change.

mod lifecycle;
mod ownership;
mod placing;

use std::collections::BTreeMap;

use super::testkit::*;
use super::*;
use crate::model::{Claim, ObservedComponent};

pub const WEIGHTED: &str = "
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

pub fn three_tiers() -> Observed {
    lattice(vec![
        host("h1", &[("tier", "cloud")]),
        host("h2", &[("tier", "gateway")]),
        host("h3", &[("tier", "edge")]),
    ])
}

pub fn status<'a>(p: &'a Plan, kind: &str, component: &str) -> &'a ScalerStatus {
    p.scalers
        .iter()
        .find(|s| s.kind == kind && s.component == component)
        .unwrap_or_else(|| panic!("no {kind} status for {component}: {:#?}", p.scalers))
}

pub fn unmanaged(image: &str, replicas: u32) -> ObservedComponent {
    ObservedComponent {
        image: image.into(),
        replicas,
        annotations: BTreeMap::new(),
    }
}

pub const COUNTER: &str = "
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

pub const EDGE_PROVIDER: &str = "
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

pub const GPIO: &str = "
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
