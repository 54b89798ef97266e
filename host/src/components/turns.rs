//! Changes to one component run one at a time. A start that is still fetching and compiling
//! its image can take long (a slow URL); a later stop, or a start of another image, supersedes
//! it instead of waiting behind it, and anything else fails fast saying a start is in progress.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::OwnedMutexGuard;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use trellis_lattice::control::ScaleComponent;
use trellis_lattice::ControlError;

/// One lock per component id, and the start holding it, if any.
#[derive(Default)]
pub struct Turns {
    slots: Mutex<HashMap<String, Arc<Slot>>>,
}

#[derive(Default)]
struct Slot {
    turn: Arc<tokio::sync::Mutex<()>>,
    pending: Mutex<Option<Pending>>,
}

struct Pending {
    image: String,
    since: Instant,
    superseded: CancellationToken,
}

/// This request's turn at a component; others wait (or supersede) until it drops.
pub struct Turn {
    slot: Arc<Slot>,
    _held: OwnedMutexGuard<()>,
}

/// While held, marks the turn as a start that a later request may supersede.
pub struct Starting {
    slot: Arc<Slot>,
    superseded: CancellationToken,
}

impl Turns {
    fn slot(&self, id: &str) -> Arc<Slot> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(slots.entry(id.to_string()).or_default())
    }

    /// Waits for `req`'s turn at its component. A start in progress is superseded by a stop or
    /// by a start of another image; any other request meanwhile fails at once.
    pub async fn take(&self, req: &ScaleComponent) -> Result<Turn, ControlError> {
        let slot = self.slot(&req.component_id);
        {
            let pending = slot.pending.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(p) = pending.as_ref() {
                let supersedes =
                    req.replicas == 0 || (!req.image.is_empty() && req.image != p.image);
                if !supersedes {
                    return Err(ControlError::conflict(format!(
                        "a start of {} from {} is in progress (for {}); try again when it is done, or stop it",
                        req.component_id,
                        p.image,
                        humantime::format_duration(std::time::Duration::from_secs(
                            p.since.elapsed().as_secs()
                        )),
                    )));
                }
                tracing::info!(component_id = %req.component_id, image = %p.image, "a later request supersedes a start in progress");
                p.superseded.cancel();
            }
        }
        let held = Arc::clone(&slot.turn).lock_owned().await;
        Ok(Turn { slot, _held: held })
    }
}

impl Turn {
    /// Marks this turn as a start of `image` until the returned guard drops.
    pub fn starting(&self, image: &str) -> Starting {
        let superseded = CancellationToken::new();
        *self.slot.pending.lock().unwrap_or_else(|p| p.into_inner()) = Some(Pending {
            image: image.to_string(),
            since: Instant::now(),
            superseded: superseded.clone(),
        });
        Starting {
            slot: Arc::clone(&self.slot),
            superseded,
        }
    }
}

impl Starting {
    /// Resolves when a later request supersedes this start.
    pub async fn superseded(&self) {
        self.superseded.cancelled().await
    }
}

impl Drop for Starting {
    fn drop(&mut self) {
        *self.slot.pending.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(replicas: u32, image: &str) -> ScaleComponent {
        ScaleComponent {
            component_id: "greeter".into(),
            image: image.into(),
            replicas,
            config: vec![],
            max_memory_bytes: None,
            timeout_ms: None,
            annotations: Default::default(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn a_start_in_progress_fails_the_same_start_fast_and_a_stop_supersedes_it() {
        let turns = Arc::new(Turns::default());
        let first = turns.take(&req(1, "http://slow/a.wasm")).await.unwrap();
        let starting = first.starting("http://slow/a.wasm");

        let again = turns.take(&req(1, "http://slow/a.wasm")).await;
        let err = again.err().expect("the same start fails fast");
        assert_eq!(err.kind, trellis_lattice::ErrorKind::Conflict);
        assert!(
            err.message
                .contains("a start of greeter from http://slow/a.wasm is in progress"),
            "{err}"
        );
        let rescale = turns.take(&req(3, "")).await;
        assert!(
            rescale.is_err(),
            "a bare rescale of a component still starting fails fast"
        );

        let stopper = {
            let turns = Arc::clone(&turns);
            tokio::spawn(async move { turns.take(&req(0, "")).await.map(|_| ()) })
        };
        // The start notices it was superseded, gives up and lets the stop have its turn.
        starting.superseded().await;
        drop(starting);
        drop(first);
        stopper.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn another_image_supersedes_and_nothing_is_pending_after() {
        let turns = Turns::default();
        let first = turns.take(&req(1, "/a.wasm")).await.unwrap();
        let starting = first.starting("/a.wasm");
        let superseded = starting.superseded.clone();
        let b = req(1, "/b.wasm");
        let next = turns.take(&b);
        tokio::pin!(next);
        assert!(futures::poll!(next.as_mut()).is_pending());
        assert!(superseded.is_cancelled());
        drop(starting);
        drop(first);
        let turn = next.await.unwrap();
        drop(turn);
        assert!(turns.take(&req(2, "/b.wasm")).await.is_ok());
    }
}
