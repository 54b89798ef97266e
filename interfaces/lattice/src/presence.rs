//! How many hosts are live, in one request. Each host keeps one message on its own subject of
//! the lattice's presence stream: written before it takes control requests, refreshed well
//! within the stream's maximum age, purged when it stops. The stream's subject count is then
//! the number of live hosts, and a broadcast (ping, auction) stops collecting as soon as that
//! many hosts answered instead of waiting for a quiet window.
//!
//! The count only ever ends a broadcast early; it never drops an answer. A host killed
//! without a word stays counted until its message ages out, and a broadcast meanwhile falls
//! back to the quiet window, as it does when the stream is out of reach (a leaf cut off from
//! the hub, a server without JetStream).

use std::time::Duration;

use async_nats::jetstream::stream;

use crate::error::{Error, Result};
use crate::subject::Subjects;

/// How long a presence message counts without a refresh.
pub const MAX_AGE: Duration = Duration::from_secs(30);
/// How often a host refreshes its presence: three chances before it ages out.
pub const REFRESH: Duration = Duration::from_secs(10);
/// Hosts the stream holds at most (a message is a host id: well under 256 bytes).
pub const MAX_HOSTS: i64 = 100_000;
/// How long a client waits for the count before broadcasting without it.
pub const COUNT_PATIENCE: Duration = Duration::from_millis(250);

fn config(subjects: &Subjects) -> stream::Config {
    stream::Config {
        name: subjects.presence_stream(),
        description: Some("Trellis live hosts: one subject per host".into()),
        subjects: vec![subjects.presence_wildcard()],
        max_messages_per_subject: 1,
        max_age: MAX_AGE,
        // Anyone who may publish presence could invent hosts: bounded, so that costs the
        // server at most this much (and only ends broadcasts later, never drops an answer).
        max_messages: MAX_HOSTS,
        max_bytes: MAX_HOSTS * 256,
        max_message_size: 256,
        // Lost with the server, rewritten by every host within one refresh.
        storage: stream::StorageType::Memory,
        discard: stream::DiscardPolicy::Old,
        num_replicas: 1,
        ..Default::default()
    }
}

/// Says `host_id` is live (creating the stream on first use), and waits until the stream
/// holds it, so a host counted is one that is about to answer.
pub async fn announce(nats: &async_nats::Client, subjects: &Subjects, host_id: &str) -> Result<()> {
    let js = subjects.jetstream(nats);
    let publish = || async {
        js.publish(
            subjects.presence(host_id),
            host_id.as_bytes().to_vec().into(),
        )
        .await
        .map_err(Error::nats)?
        .await
        .map_err(Error::nats)
    };
    if publish().await.is_ok() {
        return Ok(());
    }
    js.get_or_create_stream(config(subjects))
        .await
        .map_err(Error::nats)?;
    publish().await.map(|_| ())
}

/// Says `host_id` is gone.
pub async fn withdraw(nats: &async_nats::Client, subjects: &Subjects, host_id: &str) -> Result<()> {
    let js = subjects.jetstream(nats);
    js.get_stream_no_info(subjects.presence_stream())
        .await
        .map_err(Error::nats)?
        .purge()
        .filter(subjects.presence(host_id))
        .await
        .map_err(Error::nats)?;
    Ok(())
}

/// Whether `subject` is the request [`live_hosts`] sends (`$JS[.{domain}].API.STREAM.INFO.`
/// of a presence stream): a user not allowed it still broadcasts, only without the count.
pub fn is_count_request(subject: &str) -> bool {
    let Some(rest) = subject.strip_prefix("$JS.") else {
        return false;
    };
    let rest = rest.split_once("API.").map_or(rest, |(_, r)| r);
    rest.strip_prefix("STREAM.INFO.")
        .is_some_and(|stream| stream.starts_with(&format!("{}_hosts_", crate::subject::ROOT)))
}

/// How many hosts are live now, or `None` when the stream cannot tell (not there, out of
/// reach, or slower than [`COUNT_PATIENCE`]).
pub async fn live_hosts(nats: &async_nats::Client, subjects: &Subjects) -> Option<u64> {
    let js = subjects.jetstream(nats);
    let info = tokio::time::timeout(COUNT_PATIENCE, js.get_stream(subjects.presence_stream()));
    match info.await {
        Ok(Ok(stream)) => Some(stream.cached_info().state.subjects_count),
        Ok(Err(err)) => {
            tracing::debug!(%err, "live hosts not countable; broadcasts wait for quiet");
            None
        }
        Err(_) => None,
    }
}

/// How long the deployment manager waits for the ids of the live hosts.
pub const IDS_PATIENCE: Duration = Duration::from_secs(2);

/// The ids of the hosts live now, or `None` when the stream cannot tell them all (not there,
/// out of reach, or slower than [`IDS_PATIENCE`]).
pub async fn live_host_ids(
    nats: &async_nats::Client,
    subjects: &Subjects,
) -> Option<std::collections::BTreeSet<String>> {
    use futures::TryStreamExt as _;
    let js = subjects.jetstream(nats);
    let wildcard = subjects.presence_wildcard();
    let prefix = wildcard.trim_end_matches('*').to_string();
    let read = async {
        let stream = js.get_stream(subjects.presence_stream()).await.ok()?;
        let mut listed = stream.info_with_subjects(&wildcard).await.ok()?;
        let mut ids = std::collections::BTreeSet::new();
        while let Some((subject, _)) = listed.try_next().await.ok()? {
            if let Some(id) = subject.strip_prefix(&prefix) {
                ids.insert(id.to_string());
            }
        }
        Some(ids)
    };
    tokio::time::timeout(IDS_PATIENCE, read)
        .await
        .ok()
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_count_request_is_recognised_in_any_domain() {
        let s = Subjects::new("d");
        let info = format!("$JS.API.STREAM.INFO.{}", s.presence_stream());
        assert!(is_count_request(&info));
        let hub = format!("$JS.hub.API.STREAM.INFO.{}", s.presence_stream());
        assert!(is_count_request(&hub));
        assert!(!is_count_request("$JS.API.STREAM.INFO.KV_trellis_links_d"));
        assert!(!is_count_request("trellis.ctl.v1.d.host.ping"));
        assert!(!is_count_request(&format!(
            "$JS.API.STREAM.PURGE.{}",
            s.presence_stream()
        )));
    }
}
