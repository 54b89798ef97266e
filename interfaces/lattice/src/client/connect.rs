//! Connecting to NATS with the credentials and TLS Trellis accepts, and saying in one line why
//! a server refused a connection.

use std::path::PathBuf;
use std::time::Duration;

use super::tls::{self, NatsTls};
use super::violations::Violations;
use crate::error::{Error, ErrorKind, Result};

/// A creds file is a JWT and a seed: a few kilobytes.
const MAX_CREDS_BYTES: u64 = 64 << 10;
/// How long a CLI or test connection waits for the server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// How to authenticate to NATS.
#[derive(Clone, Debug, Default)]
pub enum NatsAuth {
    #[default]
    None,
    /// A `.creds` file (JWT + nkey seed).
    CredsFile(PathBuf),
    /// A user nkey seed (`SU...`).
    NkeySeed(String),
    UserPassword {
        user: String,
        password: String,
    },
    Token(String),
}

impl NatsAuth {
    /// Picks the authentication from the usual flags; at most one may be given.
    pub fn from_parts(
        creds: Option<PathBuf>,
        nkey_seed: Option<String>,
        user: Option<String>,
        password: Option<String>,
        token: Option<String>,
    ) -> Result<Self> {
        let given = [
            creds.is_some(),
            nkey_seed.is_some(),
            user.is_some(),
            token.is_some(),
        ]
        .into_iter()
        .filter(|b| *b)
        .count();
        if given > 1 {
            return Err(Error::invalid(
                "NATS credentials",
                "",
                "give only one of a creds file, an nkey seed, a user/password or a token",
            ));
        }
        Ok(match (creds, nkey_seed, user, token) {
            (Some(path), ..) => NatsAuth::CredsFile(path),
            (_, Some(seed), ..) => NatsAuth::NkeySeed(read_nkey_seed(&seed)?),
            (_, _, Some(user), _) => NatsAuth::UserPassword {
                user,
                password: password.unwrap_or_default(),
            },
            (_, _, _, Some(token)) => NatsAuth::Token(token),
            _ => NatsAuth::None,
        })
    }

    /// Who connects, for messages: never a secret.
    pub fn who(&self) -> String {
        match self {
            NatsAuth::None => "a client without credentials".into(),
            NatsAuth::CredsFile(path) => format!("the user of {}", path.display()),
            NatsAuth::NkeySeed(seed) => match nkeys::KeyPair::from_seed(seed.trim()) {
                Ok(pair) => format!("user {}", pair.public_key()),
                Err(_) => "the nkey user".into(),
            },
            NatsAuth::UserPassword { user, .. } => format!("user {user}"),
            NatsAuth::Token(_) => "the token's user".into(),
        }
    }
}

/// A user nkey seed (`SU…`), given as itself or as the path of a seed file.
fn read_nkey_seed(value: &str) -> Result<String> {
    let value = value.trim();
    if value.starts_with("SU") {
        return Ok(value.to_string());
    }
    let path = std::path::Path::new(value);
    let bytes = crate::image::local::read_blocking(path, 4096)
        .map_err(|e| Error::invalid("--nats-nkey", value, e.to_string()))?;
    let seed = String::from_utf8(bytes)
        .unwrap_or_default()
        .trim()
        .to_string();
    if !seed.starts_with("SU") || nkeys::KeyPair::from_seed(&seed).is_err() {
        return Err(Error::invalid(
            "--nats-nkey",
            value,
            "is neither a user nkey seed (SU…) nor a file holding one",
        ));
    }
    Ok(seed)
}

/// Everything about how to reach a NATS server but its URL: credentials and TLS.
#[derive(Clone, Debug, Default)]
pub struct NatsOptions {
    pub auth: NatsAuth,
    pub tls: NatsTls,
}

impl From<NatsAuth> for NatsOptions {
    fn from(auth: NatsAuth) -> Self {
        Self {
            auth,
            tls: NatsTls::default(),
        }
    }
}

/// Connect options carrying the credentials and TLS of `nats`, with a client name. Callers
/// add reconnect behaviour and an event callback.
pub async fn connect_options(nats: &NatsOptions, name: &str) -> Result<async_nats::ConnectOptions> {
    let opts = match &nats.auth {
        NatsAuth::None => async_nats::ConnectOptions::new(),
        NatsAuth::CredsFile(path) => {
            let shown = path.display().to_string();
            let bytes = crate::image::local::read(path.clone(), MAX_CREDS_BYTES, CONNECT_TIMEOUT)
                .await
                .map_err(|e| Error::invalid("NATS creds file", &shown, e.to_string()))?;
            let text = String::from_utf8(bytes)
                .map_err(|_| Error::invalid("NATS creds file", &shown, "is not text"))?;
            // async-nats's parse errors do not quote the file; ours say only which file.
            async_nats::ConnectOptions::with_credentials(&text).map_err(|_| {
                Error::invalid(
                    "NATS creds file",
                    &shown,
                    "is not a creds file (a user JWT and an nkey seed)",
                )
            })?
        }
        NatsAuth::NkeySeed(seed) => async_nats::ConnectOptions::with_nkey(seed.trim().to_string()),
        NatsAuth::UserPassword { user, password } => {
            async_nats::ConnectOptions::with_user_and_password(user.clone(), password.clone())
        }
        NatsAuth::Token(token) => async_nats::ConnectOptions::with_token(token.clone()),
    };
    let tls_config = {
        let tls = nats.tls.clone();
        tokio::task::spawn_blocking(move || tls.client_config())
            .await
            .map_err(|e| Error::nats(format!("reading the TLS files: {e}")))??
    };
    let opts = match tls_config {
        Some(config) => opts.tls_client_config(config).require_tls(true),
        None => opts,
    };
    Ok(opts.name(name))
}

/// Why a server refused a connection, in one line, when it did (credentials or TLS); `None`
/// for other failures (nothing listening, a timeout), which are worth retrying.
pub fn refusal(url: &str, nats: &NatsOptions, err: &async_nats::ConnectError) -> Option<Error> {
    use async_nats::ConnectErrorKind as K;
    let text = err.to_string();
    let line = match err.kind() {
        K::AuthorizationViolation => format!(
            "authorization violation: the server at {url} refused the credentials of {}",
            nats.auth.who()
        ),
        K::Authentication => format!(
            "authorization violation: cannot sign in to the server at {url} as {} (is the nkey seed or creds file right?)",
            nats.auth.who()
        ),
        K::Tls => tls::explain(url, &nats.tls, &text),
        // A TLS alert or a server that does not speak TLS surfaces as an I/O error.
        K::Io if ["certificate", "Certificate", "alert", "InvalidContentType", "CorruptMessage"]
            .iter()
            .any(|s| text.contains(s)) =>
        {
            tls::explain(url, &nats.tls, &text)
        }
        _ => return None,
    };
    Some(Error::control(ErrorKind::Unavailable, line))
}

fn connect_error(url: &str, nats: &NatsOptions, err: async_nats::ConnectError) -> Error {
    refusal(url, nats, &err).unwrap_or_else(|| match err.kind() {
        async_nats::ConnectErrorKind::TimedOut => Error::Nats(format!(
            "cannot connect to {url}: no answer within {}",
            humantime::format_duration(CONNECT_TIMEOUT)
        )),
        _ => Error::Nats(format!("cannot connect to {url}: {err}")),
    })
}

/// Connects once, failing fast when the server is not there or refuses (for CLIs and tests).
pub async fn connect(url: &str, nats: &NatsOptions, name: &str) -> Result<async_nats::Client> {
    connect_options(nats, name)
        .await?
        .connection_timeout(CONNECT_TIMEOUT)
        .connect(url)
        .await
        .map_err(|e| connect_error(url, nats, e))
}

/// [`connect`], recording the connection's permission violations in `violations` (which a
/// [`super::LatticeClient::with_violations`] fails its requests on at once).
pub async fn connect_watched(
    url: &str,
    nats: &NatsOptions,
    name: &str,
    violations: &Violations,
) -> Result<async_nats::Client> {
    let recorder = violations.clone();
    connect_options(nats, name)
        .await?
        .connection_timeout(CONNECT_TIMEOUT)
        .event_callback(move |event| {
            recorder.record(&event);
            async {}
        })
        .connect(url)
        .await
        .map_err(|e| connect_error(url, nats, e))
}
