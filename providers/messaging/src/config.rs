//! What a link's config says about messaging, checked once when the link arrives.

use trellis_provider::Config;

/// Topic filters a link may subscribe to at most.
pub const MAX_SUBSCRIPTIONS: usize = 64;
/// The longest topic or topic filter (MQTT allows 65,535 bytes; nobody needs that many).
pub const MAX_TOPIC_LEN: usize = 1024;
/// Messages waiting for a component, per link, unless `queue` says otherwise.
pub const DEFAULT_QUEUE: usize = 1024;
/// The largest `queue` a link may ask for.
pub const MAX_QUEUE: usize = 1 << 20;
/// Topics delivered at once per link, unless `concurrency` says otherwise.
pub const DEFAULT_CONCURRENCY: usize = 4;
pub const MAX_CONCURRENCY: usize = 256;

/// A link's config that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("link config `{key}`: {reason}")]
pub struct ConfigError {
    pub key: String,
    pub reason: String,
}

impl ConfigError {
    pub fn new(key: &str, reason: impl Into<String>) -> Self {
        Self {
            key: key.to_string(),
            reason: reason.into(),
        }
    }
}

/// Checks a topic (or a topic filter): not empty, not too long, no NUL or control
/// characters. Wildcard rules belong to each transport.
pub fn check_topic(topic: &str) -> Result<(), String> {
    if topic.is_empty() {
        return Err("a topic is empty".into());
    }
    if topic.len() > MAX_TOPIC_LEN {
        return Err(format!("a topic is longer than {MAX_TOPIC_LEN} bytes"));
    }
    if topic.chars().any(char::is_control) {
        return Err(format!("topic {topic:?} holds a control character"));
    }
    Ok(())
}

/// How a provider → component link delivers: which topics, how much may wait, how many
/// topics at once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// `subscriptions=factory/+/temp,alerts/#`: filters in the transport's syntax.
    pub topics: Vec<String>,
    /// `queue=N`: messages held for the component; more are dropped and counted.
    pub queue: usize,
    /// `concurrency=N`: messages of different topics handled at once (one topic's messages
    /// always one after the other, in order).
    pub concurrency: usize,
}

fn number(config: &Config, key: &str, default: usize, max: usize) -> Result<usize, ConfigError> {
    match config.get(key) {
        None => Ok(default),
        Some(v) => match v.trim().parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(ConfigError::new(
                key,
                format!("must be a number from 1 to {max}"),
            )),
        },
    }
}

impl Delivery {
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        let topics: Vec<String> = config
            .get("subscriptions")
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        if topics.is_empty() {
            return Err(ConfigError::new(
                "subscriptions",
                "names no topic (e.g. subscriptions=factory/+/temp,alerts/#)",
            ));
        }
        if topics.len() > MAX_SUBSCRIPTIONS {
            return Err(ConfigError::new(
                "subscriptions",
                format!("more than {MAX_SUBSCRIPTIONS} topics"),
            ));
        }
        for t in &topics {
            check_topic(t).map_err(|r| ConfigError::new("subscriptions", r))?;
        }
        let mut unique = topics.clone();
        unique.sort();
        unique.dedup();
        Ok(Self {
            topics: unique,
            queue: number(config, "queue", DEFAULT_QUEUE, MAX_QUEUE)?,
            concurrency: number(config, "concurrency", DEFAULT_CONCURRENCY, MAX_CONCURRENCY)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pairs: &[(&str, &str)]) -> Config {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn subscriptions_are_split_trimmed_and_deduplicated() {
        let d = Delivery::from_config(&cfg(&[("subscriptions", " a/#, b/+/c ,,a/#")])).unwrap();
        assert_eq!(d.topics, vec!["a/#", "b/+/c"]);
        assert_eq!(
            (d.queue, d.concurrency),
            (DEFAULT_QUEUE, DEFAULT_CONCURRENCY)
        );
    }

    #[test]
    fn unusable_configs_are_refused_with_their_key() {
        let err = |pairs: &[(&str, &str)]| Delivery::from_config(&cfg(pairs)).unwrap_err().key;
        assert_eq!(err(&[]), "subscriptions");
        assert_eq!(err(&[("subscriptions", " , ")]), "subscriptions");
        assert_eq!(err(&[("subscriptions", "a\u{0}b")]), "subscriptions");
        let long = "x".repeat(MAX_TOPIC_LEN + 1);
        assert_eq!(err(&[("subscriptions", long.as_str())]), "subscriptions");
        let many = (0..=MAX_SUBSCRIPTIONS)
            .map(|i| format!("t{i}"))
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(err(&[("subscriptions", many.as_str())]), "subscriptions");
        assert_eq!(err(&[("subscriptions", "a"), ("queue", "0")]), "queue");
        assert_eq!(err(&[("subscriptions", "a"), ("queue", "lots")]), "queue");
        assert_eq!(
            err(&[("subscriptions", "a"), ("concurrency", "100000")]),
            "concurrency"
        );
    }
}
