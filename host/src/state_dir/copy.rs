//! Keeps `lattice.json` holding the links and named config the host's workload uses: links
//! from or to anything it runs, the configs those links and its components and providers
//! name. Only what the host uses, so a board does not carry every secret of the lattice.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use trellis_lattice::kv::{self, LatticeState, Mirror, SavedState, StateCopy};

use super::workload::{SavedWorkload, Workload};

/// Changes that come together are written once.
const SETTLE: Duration = Duration::from_millis(200);

/// The part of `mirror` that `workload` uses.
pub fn used_by(mirror: &Mirror, workload: &Workload) -> SavedState {
    let ids = workload.ids();
    let links: Vec<_> = mirror
        .links()
        .into_iter()
        .filter(|l| ids.contains(&l.source_id) || ids.contains(&l.target_id))
        .collect();
    let names: BTreeSet<String> = workload
        .config_names()
        .into_iter()
        .chain(
            links
                .iter()
                .flat_map(|l| l.source_config.iter().chain(l.target_config.iter()))
                .cloned(),
        )
        .collect();
    let configs = mirror
        .configs
        .iter()
        .filter(|(name, _)| names.contains(*name))
        .map(|(n, c)| (n.clone(), c.clone()))
        .collect();
    SavedState {
        lattice: workload.lattice.clone(),
        links,
        configs,
    }
}

/// Follows the lattice state and the workload until `shutdown`, rewriting the copy when what
/// the workload uses changed. Nothing is written before the store was read once: a host
/// started while cut off keeps the copy it has.
pub async fn keep_copy(
    state: LatticeState,
    saved: Arc<SavedWorkload>,
    copy: StateCopy,
    shutdown: CancellationToken,
) {
    let (tx, mut mirror_rx) = tokio::sync::watch::channel(None::<Mirror>);
    let mut mirror = Mirror::default();
    tokio::spawn(kv::follow(
        state.followed(),
        shutdown.clone(),
        move |update| {
            mirror.apply(update);
            tx.send_replace(Some(mirror.clone()));
        },
    ));
    let mut workload_rx = saved.subscribe();
    let mut written: Option<SavedState> = None;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            changed = mirror_rx.changed() => if changed.is_err() { return },
            changed = workload_rx.changed() => if changed.is_err() { return },
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(SETTLE) => {}
        }
        let Some(mirror) = mirror_rx.borrow_and_update().clone() else {
            continue;
        };
        workload_rx.borrow_and_update();
        let used = used_by(&mirror, &saved.get());
        if written.as_ref() == Some(&used) {
            continue;
        }
        let (target, to_write) = (copy.clone(), used.clone());
        match tokio::task::spawn_blocking(move || target.save_blocking(&to_write)).await {
            Ok(Ok(())) => written = Some(used),
            Ok(Err(err)) => tracing::warn!(%err, "cannot save the copy of links and config"),
            Err(err) => tracing::warn!(%err, "saving the copy of links and config failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use trellis_lattice::control::ScaleComponent;
    use trellis_lattice::link::Link;

    use super::*;

    fn link(source: &str, target: &str, source_config: &[&str], target_config: &[&str]) -> Link {
        Link {
            source_id: source.into(),
            target_id: target.into(),
            name: "default".into(),
            wit_namespace: "wasi".into(),
            wit_package: "keyvalue".into(),
            interfaces: vec!["store".into()],
            source_config: source_config.iter().map(|s| s.to_string()).collect(),
            target_config: target_config.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn only_what_the_workload_uses_is_copied() {
        let mut mirror = Mirror::from_snapshot(
            vec![
                link("reader", "nats-msg", &[], &["broker"]),
                link("http", "store", &["route"], &[]),
                link("other", "kv", &[], &["secret"]),
            ],
            ["broker", "route", "secret", "pins", "unused"]
                .iter()
                .map(|n| (n.to_string(), BTreeMap::from([("k".into(), "v".into())])))
                .collect(),
        );
        let mut workload = Workload::default();
        workload.components.insert(
            "reader".into(),
            ScaleComponent {
                component_id: "reader".into(),
                image: "/r.wasm".into(),
                replicas: 1,
                config: vec!["pins".into()],
                max_memory_bytes: None,
                timeout_ms: None,
                annotations: BTreeMap::new(),
                ..Default::default()
            },
        );
        let used = used_by(&mirror, &workload);
        assert_eq!(used.links.len(), 1);
        assert_eq!(used.links[0].source_id, "reader");
        assert_eq!(
            used.configs.keys().cloned().collect::<Vec<_>>(),
            vec!["broker".to_string(), "pins".into()]
        );
        mirror.links.clear();
        assert!(used_by(&mirror, &workload).links.is_empty());
    }
}
