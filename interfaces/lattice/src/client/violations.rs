//! Permission violations: a NATS server that refuses a publish or a subscription says so
//! asynchronously (`-ERR 'Permissions Violation for Publish to "SUBJ"'`), which async-nats
//! hands to the connection's event callback. [`Violations`] turns those into typed values a
//! request in flight can fail on at once (instead of waiting for its timeout) and logs each
//! once per subject.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

use crate::error::{Error, ErrorKind};

/// What the server would not let this connection do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    Publish,
    Subscribe,
}

impl Action {
    fn verb(self) -> &'static str {
        match self {
            Action::Publish => "publish",
            Action::Subscribe => "subscribe to",
        }
    }
}

/// One refused publish or subscription.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Violation {
    pub action: Action,
    pub subject: String,
}

impl Violation {
    /// Parses the text of a server error; `None` for errors that are not a permissions
    /// violation.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim().trim_matches('\'');
        let rest = text.strip_prefix("Permissions Violation for ")?;
        let (action, rest) = if let Some(r) = rest.strip_prefix("Publish to ") {
            (Action::Publish, r)
        } else if let Some(r) = rest.strip_prefix("Subscription to ") {
            (Action::Subscribe, r)
        } else {
            return None;
        };
        // `"SUBJ"`, then possibly ` using queue "GROUP"`.
        let rest = rest.strip_prefix('"')?;
        let subject = &rest[..rest.find('"')?];
        Some(Self {
            action,
            subject: subject.to_string(),
        })
    }

    /// The error a request fails with: one line naming who, what and where.
    pub fn error(&self, who: &str) -> Error {
        Error::control(
            ErrorKind::Refused,
            format!(
                "authorization violation: {who} may not {} {}",
                self.action.verb(),
                self.subject
            ),
        )
    }
}

/// How many distinct violations are logged; after that they are only counted (a client
/// looping over forbidden subjects cannot grow the host's memory).
const MAX_LOGGED: usize = 1024;

/// The permission violations of one connection.
#[derive(Clone)]
pub struct Violations {
    who: Arc<str>,
    tx: broadcast::Sender<Violation>,
    /// Whether each new violation is logged at warn (hosts, managers, providers); the CLI
    /// says it in its error line instead.
    log: bool,
    logged: Arc<Mutex<HashSet<Violation>>>,
}

impl Violations {
    /// `who` names the connection's user in messages ("user UABC…").
    pub fn new(who: impl Into<String>, log: bool) -> Self {
        let (tx, _) = broadcast::channel(64);
        Self {
            who: who.into().into(),
            tx,
            log,
            logged: Arc::default(),
        }
    }

    pub fn who(&self) -> &str {
        &self.who
    }

    /// Feeds one connection event; call it from the connection's event callback.
    pub fn record(&self, event: &async_nats::Event) {
        let async_nats::Event::ServerError(async_nats::ServerError::Other(text)) = event else {
            return;
        };
        let Some(violation) = Violation::parse(text) else {
            return;
        };
        if self.log {
            let first = self
                .logged
                .lock()
                .map(|mut seen| seen.len() < MAX_LOGGED && seen.insert(violation.clone()))
                .unwrap_or(false);
            if first {
                tracing::warn!(
                    who = %self.who,
                    action = violation.action.verb(),
                    subject = %violation.subject,
                    "authorization violation: the NATS server refused this (logged once per subject and action; check the user's permissions)"
                );
            }
        }
        let _ = self.tx.send(violation);
    }

    /// Starts listening; create it before sending what may be refused.
    pub fn listen(&self) -> Denials {
        Denials {
            who: Arc::clone(&self.who),
            rx: self.tx.subscribe(),
        }
    }
}

/// A listener for the violations that concern one request.
pub struct Denials {
    who: Arc<str>,
    rx: broadcast::Receiver<Violation>,
}

impl Denials {
    /// Resolves with the error of the first violation on `subject` (published) or on a reply
    /// inbox (subscribed, which every request needs); pending forever otherwise.
    pub async fn refused(&mut self, subject: &str, inbox_prefix: &str) -> Error {
        loop {
            match self.rx.recv().await {
                Ok(v) => {
                    let concerns = match v.action {
                        Action::Publish => v.subject == subject,
                        Action::Subscribe => v.subject.starts_with(inbox_prefix),
                    };
                    if concerns {
                        return v.error(&self.who);
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
            }
        }
    }
}

impl Denials {
    /// Resolves with the error of the next violation, whatever it concerns (a command that
    /// cannot do part of its work fails as a whole), except reading the count of live hosts:
    /// without it a broadcast only waits longer. Pending forever otherwise.
    pub async fn any(&mut self) -> Error {
        loop {
            match self.rx.recv().await {
                Ok(v) if crate::presence::is_count_request(&v.subject) => continue,
                Ok(v) => return v.error(&self.who),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_errors_parse() {
        assert_eq!(
            Violation::parse(
                r#"'Permissions Violation for Publish to "trellis.ctl.v1.d.link.put"'"#
            ),
            Some(Violation {
                action: Action::Publish,
                subject: "trellis.ctl.v1.d.link.put".into()
            })
        );
        assert_eq!(
            Violation::parse(
                r#"Permissions Violation for Subscription to "_INBOX.x.*" using queue "q""#
            ),
            Some(Violation {
                action: Action::Subscribe,
                subject: "_INBOX.x.*".into()
            })
        );
        assert_eq!(Violation::parse("Maximum Payload Violation"), None);
        assert_eq!(
            Violation::parse(r#"Permissions Violation for Publish to "open"#),
            None
        );
    }

    #[tokio::test]
    async fn a_request_fails_on_its_own_subject_only() {
        let v = Violations::new("user UA", false);
        let mut denials = v.listen();
        let other = async_nats::Event::ServerError(async_nats::ServerError::Other(
            r#"Permissions Violation for Publish to "other""#.into(),
        ));
        let mine = async_nats::Event::ServerError(async_nats::ServerError::Other(
            r#"Permissions Violation for Publish to "mine""#.into(),
        ));
        v.record(&other);
        v.record(&mine);
        let err = denials.refused("mine", "_INBOX.").await;
        assert_eq!(err.kind(), ErrorKind::Refused);
        assert_eq!(
            err.to_string(),
            "authorization violation: user UA may not publish mine"
        );
    }
}
