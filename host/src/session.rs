//! The NATS session of a host: connect with the configured credentials, reconnect forever
//! with back-off, and tell the host when it is connected again so it re-announces itself.

use std::time::Duration;

use tokio::sync::mpsc;
use trellis_lattice::client::{NatsOptions, Violations};

/// Connection state changes the host reacts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEvent {
    Connected,
    Disconnected,
}

/// Back-off before connect attempt number `attempts` (async-nats counts from 1, and counts
/// the very first connection too): none for the first, so a host answers as soon as NATS
/// does, then 100 ms doubling to 5 s.
pub fn reconnect_delay(attempts: usize) -> Duration {
    if attempts <= 1 {
        return Duration::ZERO;
    }
    let exp = (attempts - 2).min(6) as u32;
    Duration::from_millis(100u64 << exp).min(Duration::from_secs(5))
}

/// Connects to NATS. The first connection is retried in the background too, so a host can
/// start before its NATS server does (edge devices booting).
pub async fn connect(
    url: &str,
    nats: &NatsOptions,
    name: &str,
) -> anyhow::Result<(async_nats::Client, mpsc::UnboundedReceiver<SessionEvent>)> {
    let (tx, rx) = mpsc::unbounded_channel();
    // Refused publishes and subscriptions are logged once per subject.
    let violations = Violations::new(nats.auth.who(), true);
    let options = || async {
        let tx = tx.clone();
        let violations = violations.clone();
        anyhow::Ok(
            trellis_lattice::client::connect_options(nats, name)
                .await?
                .max_reconnects(None)
                .reconnect_delay_callback(reconnect_delay)
                .ping_interval(Duration::from_secs(10))
                .event_callback(move |event| {
                    let tx = tx.clone();
                    violations.record(&event);
                    async move {
                        let mapped = match event {
                            async_nats::Event::Connected => Some(SessionEvent::Connected),
                            async_nats::Event::Disconnected => Some(SessionEvent::Disconnected),
                            other => {
                                tracing::debug!(event = %other, "NATS event");
                                None
                            }
                        };
                        if let Some(ev) = mapped {
                            let _ = tx.send(ev);
                        }
                    }
                }),
        )
    };
    // Connect at once when the server is there; otherwise keep trying in the background.
    let client = match options().await?.connect(url).await {
        Ok(client) => client,
        Err(err) => {
            // Refused credentials or TLS do not get better by retrying: say so and stop.
            if let Some(refused) = trellis_lattice::client::refusal(url, nats, &err) {
                return Err(refused.into());
            }
            tracing::warn!(%err, url, "NATS is not reachable yet; retrying in the background");
            options()
                .await?
                .retry_on_initial_connect()
                .connect(url)
                .await
                .map_err(|e| anyhow::anyhow!("connecting to NATS at {url}: {e}"))?
        }
    };
    Ok((client, rx))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        assert_eq!(
            reconnect_delay(1),
            Duration::ZERO,
            "the first connection does not wait"
        );
        assert_eq!(reconnect_delay(2), Duration::from_millis(100));
        assert_eq!(reconnect_delay(3), Duration::from_millis(200));
        assert_eq!(reconnect_delay(20), Duration::from_secs(5));
    }
}
