//! One error type, whose variants name which check failed; none carries the bytes checked.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unsigned: no trellis-claims section")]
    Unsigned,
    #[error("unsigned: no detached claim (.sig)")]
    UnsignedDetached,
    #[error("bad signature: the claim was not signed by the key of its issuer {issuer}")]
    BadSignature { issuer: String },
    #[error("hash mismatch: the bytes are not the ones the claim was signed for")]
    HashMismatch,
    #[error("issuer not allowed: {issuer} is not an allowed issuer")]
    IssuerNotAllowed { issuer: String },
    #[error("expired: the claim expired at {expires} (unix seconds)")]
    Expired { expires: u64 },
    #[error("not yet valid: the claim was issued at {issued_at} (unix seconds), after this host's clock")]
    NotYetValid { issued_at: u64 },
    #[error("malformed claim: {0}")]
    Malformed(&'static str),
    #[error("not an {expected} public key")]
    InvalidKey { expected: &'static str },
    #[error("{path}: {problem}")]
    SeedFile { path: String, problem: &'static str },
    #[error("{path}: {problem}")]
    File { path: String, problem: &'static str },
    #[error("{path} exists (pass --force to replace it)")]
    Exists { path: String },
    #[error("key: {0}")]
    Seed(&'static str),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Which check failed, in words a reply or an event can carry and a script can match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    Unsigned,
    BadSignature,
    HashMismatch,
    IssuerNotAllowed,
    Expired,
    NotYetValid,
    Malformed,
    /// Not a check of the claim: keys, seed files, I/O.
    Other,
}

impl Check {
    pub fn as_str(self) -> &'static str {
        match self {
            Check::Unsigned => "unsigned",
            Check::BadSignature => "bad signature",
            Check::HashMismatch => "hash mismatch",
            Check::IssuerNotAllowed => "issuer not allowed",
            Check::Expired => "expired",
            Check::NotYetValid => "not yet valid",
            Check::Malformed => "malformed claim",
            Check::Other => "error",
        }
    }
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Error {
    pub fn check(&self) -> Check {
        match self {
            Error::Unsigned | Error::UnsignedDetached => Check::Unsigned,
            Error::BadSignature { .. } => Check::BadSignature,
            Error::HashMismatch => Check::HashMismatch,
            Error::IssuerNotAllowed { .. } => Check::IssuerNotAllowed,
            Error::Expired { .. } => Check::Expired,
            Error::NotYetValid { .. } => Check::NotYetValid,
            Error::Malformed(_) => Check::Malformed,
            Error::InvalidKey { .. }
            | Error::SeedFile { .. }
            | Error::Exists { .. }
            | Error::File { .. }
            | Error::Seed(_)
            | Error::Io { .. } => Check::Other,
        }
    }
}
