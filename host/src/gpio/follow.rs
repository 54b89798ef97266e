//! Chips coming and going: `/dev` is watched (inotify) for `gpiochip*` devices, and every
//! change of the host's chips (real or simulated) sets the labels `trellis.gpio=present` and
//! `trellis.gpio.chips=...` and announces them at once as a `labels_changed` event.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use tokio_util::sync::CancellationToken;
use trellis_gpio::Chips;
use trellis_lattice::event::{Event, LabelsChanged};
use trellis_lattice::server::EventSink;

use crate::labels::{gpio_labels, HostLabels};

/// Keeps the labels in step with the chips until `shutdown`.
pub async fn labels(
    chips: Arc<Chips>,
    labels: Arc<HostLabels>,
    events: Arc<dyn EventSink>,
    host_id: String,
    shutdown: CancellationToken,
) {
    let mut names = chips.names();
    loop {
        let now = names.borrow_and_update().clone();
        if let Some(all) = labels.set_builtin(&gpio_labels(&now)) {
            tracing::info!(chips = now.join(","), "GPIO chips changed");
            let event = Event::LabelsChanged(LabelsChanged {
                host_id: host_id.clone(),
                labels: all,
            });
            events.publish(event, None).await;
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            changed = names.changed() => if changed.is_err() { return },
        }
    }
}

/// `/dev` is read and new chips are opened on a blocking thread, never on the runtime's.
async fn rescan(chips: &Arc<Chips>) {
    let chips = Arc::clone(chips);
    let _ = tokio::task::spawn_blocking(move || chips.rescan()).await;
}

/// Rescans `/dev` whenever a `gpiochip*` appears or goes there, until `shutdown`. Without
/// inotify it looks every few seconds instead.
pub async fn devices(chips: Arc<Chips>, shutdown: CancellationToken) {
    rescan(&chips).await;
    let dir = chips.dev_dir().to_path_buf();
    let watched = inotify::Inotify::init().and_then(|ino| {
        ino.watches().add(
            &dir,
            inotify::WatchMask::CREATE | inotify::WatchMask::DELETE | inotify::WatchMask::ATTRIB,
        )?;
        ino.into_event_stream([0u8; 4096])
    });
    let mut stream = match watched {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot watch for GPIO chips; looking every 5 s");
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(5)) => rescan(&chips).await,
                }
            }
        }
    };
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            event = stream.next() => match event {
                Some(Ok(e)) => {
                    let gpio = e.name.as_ref().is_some_and(|n| n.to_string_lossy().starts_with("gpiochip"));
                    if gpio {
                        // udev may still be setting the node up: look once now and once soon.
                        rescan(&chips).await;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        rescan(&chips).await;
                    }
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "watching for GPIO chips failed");
                    return;
                }
                None => return,
            },
        }
    }
}
