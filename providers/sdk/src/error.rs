//! Errors of the provider SDK.

/// What went wrong starting or running a provider.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting the host passes in the environment is missing or unusable.
    #[error("environment variable {name}: {reason}")]
    Env { name: &'static str, reason: String },
    /// Talking to the lattice (NATS, the link and config buckets) failed.
    #[error(transparent)]
    Lattice(#[from] trellis_lattice::Error),
    /// Subscribing or serving over NATS failed.
    #[error("{what}: {reason}")]
    Nats { what: String, reason: String },
    /// The provider's own code failed to start serving.
    #[error("{0:#}")]
    Provider(anyhow::Error),
}

impl Error {
    pub(crate) fn nats(what: impl Into<String>, err: impl std::fmt::Display) -> Self {
        Error::Nats {
            what: what.into(),
            reason: err.to_string(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
