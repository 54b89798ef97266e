//! Leader election: a lease in the apps bucket (`_leader`), held by compare-and-set on its
//! revision. The holder renews it every [`LeaseTiming::renew`]; another instance takes it
//! over once its revision has not changed for [`LeaseTiming::stale`], as measured by that
//! instance's own clock (no clocks are compared across machines). A holder that cannot
//! renew for [`LeaseTiming::give_up`] (shorter than `stale`) stops acting before anyone can
//! take over. Only the leader executes commands; the others keep their model warm and
//! answer API requests.

use std::time::Duration;

use async_nats::jetstream::kv;
use chrono::{DateTime, Utc};
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::records::{AppStore, LEADER_KEY};

#[derive(Clone, Copy, Debug)]
pub struct LeaseTiming {
    pub renew: Duration,
    pub give_up: Duration,
    pub stale: Duration,
}

impl Default for LeaseTiming {
    fn default() -> Self {
        Self::for_stale(Duration::from_secs(3))
    }
}

impl LeaseTiming {
    /// A lease taken over after `stale`, renewed every third of it, given up (stop acting)
    /// at five sixths of it, before anyone can take over.
    pub fn for_stale(stale: Duration) -> Self {
        Self {
            renew: stale / 3,
            give_up: stale * 5 / 6,
            stale,
        }
    }
}

/// The lease's value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The holding instance; empty when released.
    pub holder: String,
    pub renewed_at: DateTime<Utc>,
}

/// Runs the election until `shutdown`; `leader` says whether this instance leads. On
/// shutdown a held lease is released at once, so another instance takes over without
/// waiting for it to go stale.
pub async fn run(
    store: AppStore,
    instance: String,
    timing: LeaseTiming,
    leader: watch::Sender<bool>,
    shutdown: CancellationToken,
) {
    let mut seen: Option<(u64, Instant)> = None;
    let mut held: Option<u64> = None;
    let mut last_renewal = Instant::now();
    let tick = timing.renew.min(timing.stale / 3);
    let mut changes = None;
    loop {
        if changes.is_none() && held.is_none() {
            changes = lease_changes(&store).await;
        }
        let step = step(&store, &instance, timing, &mut seen, &mut held).await;
        match step {
            Ok(()) => {
                if held.is_some() {
                    last_renewal = Instant::now();
                }
            }
            Err(err) => tracing::warn!(%err, "leader lease"),
        }
        // A holder that could not renew for a while steps down before others may take over.
        if held.is_some() && last_renewal.elapsed() > timing.give_up {
            tracing::warn!("could not renew the leader lease; stepping down");
            held = None;
        }
        leader.send_if_modified(|l| {
            let now = held.is_some();
            std::mem::replace(l, now) != now
        });
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(tick) => {}
            // A follower looks again as soon as the lease changes, so a released lease is
            // taken at once; the holder ignores its own renewals.
            alive = next_change(&mut changes), if held.is_none() => {
                if !alive {
                    changes = None;
                }
            }
        }
    }
    leader.send_replace(false);
    if let Some(revision) = held {
        let released = Lease {
            holder: String::new(),
            renewed_at: Utc::now(),
        };
        let value = serde_json::to_vec(&released).unwrap_or_default().into();
        match store.write_if(LEADER_KEY, value, revision).await {
            Ok(Some(_)) => tracing::info!("released the leader lease"),
            Ok(None) => {}
            Err(err) => tracing::warn!(%err, "could not release the leader lease"),
        }
    }
}

/// A watch on the lease key, or none when it cannot be opened (the tick still polls).
async fn lease_changes(store: &AppStore) -> Option<kv::Watch> {
    match store.kv().watch(LEADER_KEY).await {
        Ok(w) => Some(w),
        Err(err) => {
            tracing::warn!(%err, "cannot watch the leader lease; polling it");
            None
        }
    }
}

/// Waits for the next change of the lease; false when the watch ended.
async fn next_change(changes: &mut Option<kv::Watch>) -> bool {
    match changes {
        Some(w) => matches!(w.next().await, Some(Ok(_))),
        None => std::future::pending().await,
    }
}

async fn step(
    store: &AppStore,
    instance: &str,
    timing: LeaseTiming,
    seen: &mut Option<(u64, Instant)>,
    held: &mut Option<u64>,
) -> crate::records::Result<()> {
    let mine = Lease {
        holder: instance.to_string(),
        renewed_at: Utc::now(),
    };
    let value: bytes::Bytes = serde_json::to_vec(&mine).unwrap_or_default().into();
    if let Some(revision) = *held {
        // Renew; a conflict means someone else took the lease.
        match store.write_if(LEADER_KEY, value, revision).await? {
            Some(rev) => *held = Some(rev),
            None => {
                tracing::warn!("lost the leader lease to another instance");
                *held = None;
            }
        }
        return Ok(());
    }
    let current = store.read::<Lease>(LEADER_KEY).await?;
    let free = match &current.value {
        None => true,
        Some(l) if l.holder.is_empty() => true,
        Some(l) if l.holder == instance => true,
        Some(_) => {
            // Stale when its revision has not moved for `stale` by our clock.
            match seen {
                Some((rev, since)) if *rev == current.revision => since.elapsed() >= timing.stale,
                _ => {
                    *seen = Some((current.revision, Instant::now()));
                    false
                }
            }
        }
    };
    if !free {
        return Ok(());
    }
    if let Some(rev) = store.write_if(LEADER_KEY, value, current.revision).await? {
        if let Some(l) = current
            .value
            .filter(|l| !l.holder.is_empty() && l.holder != instance)
        {
            tracing::info!(previous = %l.holder, "took over a stale leader lease");
        } else {
            tracing::info!("became the leader");
        }
        *held = Some(rev);
        *seen = None;
    }
    Ok(())
}
