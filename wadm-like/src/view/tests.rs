//! The view against events and inventories in every order they can arrive in.

use super::*;
use chrono::Utc;
use trellis_lattice::event::{HostStarted, LabelsChanged};

fn inv(id: &str, components: &[(&str, u32)]) -> HostInventory {
    HostInventory {
        host_id: id.into(),
        friendly_name: id.into(),
        lattice: "t".into(),
        labels: Default::default(),
        version: "0".into(),
        uptime_seconds: 0,
        started_at: Utc::now(),
        components: components
            .iter()
            .map(|(c, n)| trellis_lattice::inventory::ComponentInfo {
                id: c.to_string(),
                image: "file:///c.wasm".into(),
                digest: String::new(),
                replicas: *n,
                limits: trellis_lattice::inventory::ComponentLimits {
                    max_memory_bytes: 1,
                    timeout_ms: 1,
                },
                annotations: Default::default(),
                imports: vec![],
                exports: vec![],
                started_at: Utc::now(),
            })
            .collect(),
        providers: vec![],
        resources: Default::default(),
        heartbeat_interval_ms: 500,
        seq: None,
        page: None,
    }
}

#[tokio::test]
async fn a_stale_heartbeat_does_not_undo_a_command() {
    let mut v = LatticeView::default();
    v.inventory(&inv("H", &[]));
    v.applied(
        "app",
        Command::ScaleComponent {
            host_id: "H".into(),
            component_id: "c".into(),
            image: "file:///c.wasm".into(),
            replicas: 2,
            config: Vec::new(),
            annotations: Default::default(),
            grants: Default::default(),
            issuer: None,
        },
    );
    // A heartbeat taken before the command finished.
    v.inventory(&inv("H", &[]));
    assert_eq!(v.observed().hosts["H"].components["c"].replicas, 2);
    // A later heartbeat that agrees changes nothing.
    assert!(!v.inventory(&inv("H", &[("c", 2)])));
}

#[tokio::test(start_paused = true)]
async fn silent_hosts_are_probed_then_expire() {
    let mut v = LatticeView::default();
    v.inventory(&inv("H", &[]));
    let now = Instant::now();
    assert!(v.to_probe(now).is_empty());
    let later = now + Duration::from_millis(800);
    assert_eq!(v.to_probe(later).len(), 1);
    assert!(v.to_probe(later).is_empty(), "one probe at a time");
    assert!(v.expired(later).is_empty());
    assert_eq!(v.expired(now + Duration::from_millis(1600)), vec!["H"]);
    assert!(v.remove_host("H"));
    // A snapshot begun before the host was declared gone does not bring it back.
    let snap = Snapshot {
        started: Some(now),
        inventories: vec![inv("H", &[])],
        ..Default::default()
    };
    v.snapshot(snap);
    assert!(!v.has_host("H"));
}

#[tokio::test]
async fn label_changes_and_restarts() {
    let mut v = LatticeView::default();
    v.inventory(&inv("H", &[("c", 1)]));
    let ev = Event::LabelsChanged(LabelsChanged {
        host_id: "H".into(),
        labels: [("tier".to_string(), "edge".to_string())].into(),
    });
    assert!(v.event("H", None, &ev));
    assert!(!v.event("H", None, &ev));
    let restarted = Event::HostStarted(HostStarted {
        host_id: "H".into(),
        friendly_name: "h".into(),
        labels: Default::default(),
        version: "0".into(),
        reconnected: false,
    });
    v.event("H", None, &restarted);
    assert!(v.observed().hosts["H"].components.is_empty());
}

/// The host announces a provider healthy as soon as it is, which can arrive before the
/// event saying it started: the provider must not stay "starting" until a heartbeat.
#[tokio::test]
async fn health_announced_before_the_start_is_kept() {
    let mut v = LatticeView::default();
    v.inventory(&inv("H", &[]));
    let healthy = Event::ProviderHealthChanged(trellis_lattice::event::ProviderHealthChanged {
        host_id: "H".into(),
        provider_id: "kv".into(),
        health: ProviderHealth::Healthy,
        message: None,
    });
    let started = Event::ProviderStarted(trellis_lattice::event::ProviderStarted {
        host_id: "H".into(),
        provider_id: "kv".into(),
        image: "file:///kv".into(),
        annotations: Default::default(),
    });
    assert!(!v.event("H", None, &healthy));
    assert!(v.event("H", None, &started));
    assert_eq!(
        v.observed().hosts["H"].providers["kv"].health,
        ProviderHealth::Healthy
    );
    // In the usual order the start comes first and the health follows.
    let mut v = LatticeView::default();
    v.inventory(&inv("H", &[]));
    v.event("H", None, &started);
    assert_eq!(
        v.observed().hosts["H"].providers["kv"].health,
        ProviderHealth::Starting
    );
    assert!(v.event("H", None, &healthy));
    assert_eq!(
        v.observed().hosts["H"].providers["kv"].health,
        ProviderHealth::Healthy
    );
    // An inventory read before that event does not take it back.
    let mut stale = inv("H", &[]);
    stale
        .providers
        .push(trellis_lattice::inventory::ProviderInfo {
            id: "kv".into(),
            image: "file:///kv".into(),
            health: ProviderHealth::Starting,
            annotations: Default::default(),
            health_message: None,
            started_at: chrono::Utc::now(),
        });
    v.inventory(&stale);
    assert_eq!(
        v.observed().hosts["H"].providers["kv"].health,
        ProviderHealth::Healthy
    );
}

mod order {
    use super::*;
    use trellis_lattice::event::{ProviderHealthChanged, ProviderStarted};
    use trellis_lattice::inventory::ProviderInfo;

    fn inv(id: &str, provider: Option<ProviderHealth>) -> HostInventory {
        let mut i: HostInventory = serde_json::from_value(serde_json::json!({
            "host_id": id, "friendly_name": "h", "lattice": "l", "labels": {}, "version": "0",
            "uptime_seconds": 0, "started_at": "2026-01-01T00:00:00Z", "components": [],
            "providers": [], "resources": {"rss_bytes": 0, "active_invocations": 0},
            "heartbeat_interval_ms": 600000
        }))
        .unwrap();
        i.seq = Some(Sequence { epoch: 1, n: 0 });
        if let Some(h) = provider {
            i.providers.push(ProviderInfo {
                id: "kv".into(),
                image: "file:///kv".into(),
                health: h,
                annotations: Default::default(),
                health_message: None,
                started_at: chrono::Utc::now(),
            });
        }
        i
    }

    /// A host starts a provider: its inventory is read before (E) and during (A, still
    /// starting) the start, the provider turns healthy (B), the host answers the start (C)
    /// and announces it (D). In whatever order the manager takes these in, it ends up
    /// knowing the provider healthy.
    #[tokio::test]
    async fn every_order_of_a_provider_start_ends_healthy() {
        let start = Command::StartProvider {
            host_id: "H".into(),
            provider_id: "kv".into(),
            image: "file:///kv".into(),
            config: vec![],
            annotations: Default::default(),
        };
        let steps = ["A", "B", "C", "D", "E"];
        let mut failures = Vec::new();
        let mut perm = |order: Vec<&str>| {
            let mut v = LatticeView::default();
            v.inventory(&inv("H", None));
            for s in &order {
                match *s {
                    "A" => {
                        v.inventory(&inv("H", Some(ProviderHealth::Starting)));
                    }
                    "B" => {
                        v.event(
                            "H",
                            Some(Sequence { epoch: 1, n: 1 }),
                            &Event::ProviderHealthChanged(ProviderHealthChanged {
                                host_id: "H".into(),
                                provider_id: "kv".into(),
                                health: ProviderHealth::Healthy,
                                message: None,
                            }),
                        );
                    }
                    "C" => v.applied("app", start.clone()),
                    "D" => {
                        v.event(
                            "H",
                            Some(Sequence { epoch: 1, n: 2 }),
                            &Event::ProviderStarted(ProviderStarted {
                                host_id: "H".into(),
                                provider_id: "kv".into(),
                                image: "file:///kv".into(),
                                annotations: Default::default(),
                            }),
                        );
                    }
                    "E" => {
                        v.inventory(&inv("H", None));
                    }
                    _ => unreachable!(),
                }
            }
            let h = v.observed().hosts["H"]
                .providers
                .get("kv")
                .map(|p| p.health);
            if h != Some(ProviderHealth::Healthy) {
                failures.push((order.join(""), h));
            }
        };
        fn perms(items: &[&'static str]) -> Vec<Vec<&'static str>> {
            if items.len() <= 1 {
                return vec![items.to_vec()];
            }
            let mut out = vec![];
            for i in 0..items.len() {
                let mut rest = items.to_vec();
                let x = rest.remove(i);
                for mut p in perms(&rest) {
                    p.insert(0, x);
                    out.push(p);
                }
            }
            out
        }
        for p in perms(&steps) {
            perm(p);
        }
        assert!(failures.is_empty(), "{failures:?}");
    }
}

/// A snapshot read from the store before a config was put and a claim taken does not undo
/// them: a config a user just put stays known, and what the app just created stays its own
/// (or an undeploy would leave it behind as nobody's).
#[tokio::test(start_paused = true)]
async fn a_snapshot_begun_before_a_change_does_not_undo_it() {
    let mut v = LatticeView::default();
    let started = Instant::now();
    tokio::time::advance(Duration::from_millis(10)).await;
    let shared: Config = [("greeting".to_string(), "hi".to_string())].into();
    v.config("shared", Some(shared.clone()));
    let created: Config = [("mode".to_string(), "loud".to_string())].into();
    v.applied(
        "app",
        Command::PutConfig {
            name: "app-1".into(),
            values: created.clone(),
        },
    );
    let stale = || Snapshot {
        started: Some(started),
        configs: Some(BTreeMap::new()),
        owners: Some(BTreeMap::new()),
        links: Some(Vec::new()),
        ..Default::default()
    };
    v.snapshot(stale());
    assert_eq!(v.observed().configs.get("shared"), Some(&shared));
    assert_eq!(v.observed().configs.get("app-1"), Some(&created));
    assert!(v.observed().owns(&Claim::Config("app-1".into()), "app"));

    // A snapshot begun after them is the truth: what it lacks is gone.
    tokio::time::advance(Duration::from_secs(10)).await;
    v.snapshot(Snapshot {
        started: Some(Instant::now()),
        ..stale()
    });
    assert!(v.observed().configs.is_empty());
    assert!(!v.observed().owns(&Claim::Config("app-1".into()), "app"));
}
