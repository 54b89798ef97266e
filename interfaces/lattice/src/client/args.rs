//! [`NatsArgs`]: the NATS connection flags of every Trellis binary, defined once so
//! `trellis-host`, `trellis-deploy` and `trellis` take the same names and environment
//! variables (providers get the same settings from their host, see
//! [`crate::provider::env`]).

use std::path::PathBuf;

use super::connect::{NatsAuth, NatsOptions};
use super::tls::NatsTls;
use crate::error::Result;

/// The NATS server and how to authenticate to it (`#[command(flatten)]` it).
#[derive(Clone, Debug, clap::Args)]
pub struct NatsArgs {
    /// NATS server of the lattice; a `tls://` URL requires TLS.
    #[arg(
        long = "nats-url",
        global = true,
        env = "NATS_URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    pub nats_url: String,

    /// NATS credentials file (JWT + nkey seed).
    #[arg(
        long = "nats-creds",
        visible_alias = "creds",
        global = true,
        env = "NATS_CREDS"
    )]
    pub nats_creds: Option<PathBuf>,

    /// NATS user nkey: a seed (`SU...`) or a file holding one.
    #[arg(long, global = true, env = "NATS_NKEY", hide_env_values = true)]
    pub nats_nkey: Option<String>,

    /// NATS user name (with --nats-password).
    #[arg(long, global = true, env = "NATS_USER")]
    pub nats_user: Option<String>,

    /// NATS password (with --nats-user).
    #[arg(
        long,
        global = true,
        env = "NATS_PASSWORD",
        hide_env_values = true,
        requires = "nats_user"
    )]
    pub nats_password: Option<String>,

    /// NATS authentication token.
    #[arg(long, global = true, env = "NATS_TOKEN", hide_env_values = true)]
    pub nats_token: Option<String>,

    /// CA certificate(s) (PEM) the NATS server's certificate must be signed by; implies TLS.
    #[arg(long, global = true, env = "NATS_TLS_CA", value_name = "FILE")]
    pub nats_tls_ca: Option<PathBuf>,

    /// Client certificate (PEM) for a NATS server that verifies clients (with
    /// --nats-tls-key); implies TLS.
    #[arg(
        long,
        global = true,
        env = "NATS_TLS_CERT",
        value_name = "FILE",
        requires = "nats_tls_key"
    )]
    pub nats_tls_cert: Option<PathBuf>,

    /// The client certificate's private key (PEM).
    #[arg(
        long,
        global = true,
        env = "NATS_TLS_KEY",
        value_name = "FILE",
        requires = "nats_tls_cert"
    )]
    pub nats_tls_key: Option<PathBuf>,
}

impl NatsArgs {
    /// The credentials and TLS files given; at most one kind of credentials.
    pub fn options(&self) -> Result<NatsOptions> {
        Ok(NatsOptions {
            auth: NatsAuth::from_parts(
                self.nats_creds.clone(),
                self.nats_nkey.clone(),
                self.nats_user.clone(),
                self.nats_password.clone(),
                self.nats_token.clone(),
            )?,
            tls: NatsTls {
                ca: self.nats_tls_ca.clone(),
                cert: self.nats_tls_cert.clone(),
                key: self.nats_tls_key.clone(),
            },
        })
    }
}
