//! Connecting to NATS with the credentials Trellis accepts.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, Result};

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
            (_, Some(seed), ..) => NatsAuth::NkeySeed(seed),
            (_, _, Some(user), _) => NatsAuth::UserPassword {
                user,
                password: password.unwrap_or_default(),
            },
            (_, _, _, Some(token)) => NatsAuth::Token(token),
            _ => NatsAuth::None,
        })
    }
}

/// Connect options carrying `auth`, with a client name. Callers add reconnect behaviour.
pub async fn connect_options(auth: &NatsAuth, name: &str) -> Result<async_nats::ConnectOptions> {
    let opts = match auth {
        NatsAuth::None => async_nats::ConnectOptions::new(),
        NatsAuth::CredsFile(path) => {
            async_nats::ConnectOptions::with_credentials_file(path.clone())
                .await
                .map_err(|e| {
                    Error::invalid(
                        "NATS creds file",
                        &path.display().to_string(),
                        e.to_string(),
                    )
                })?
        }
        NatsAuth::NkeySeed(seed) => async_nats::ConnectOptions::with_nkey(seed.clone()),
        NatsAuth::UserPassword { user, password } => {
            async_nats::ConnectOptions::with_user_and_password(user.clone(), password.clone())
        }
        NatsAuth::Token(token) => async_nats::ConnectOptions::with_token(token.clone()),
    };
    Ok(opts.name(name))
}

/// Connects once, failing fast when the server is not there (for CLIs and tests).
pub async fn connect(url: &str, auth: &NatsAuth, name: &str) -> Result<async_nats::Client> {
    connect_options(auth, name)
        .await?
        .connection_timeout(Duration::from_secs(3))
        .connect(url)
        .await
        .map_err(|e| Error::Nats(format!("cannot connect to {url}: {e}")))
}
