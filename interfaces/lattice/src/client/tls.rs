//! TLS to NATS: the CA, client certificate and key files (read bounded, regular files only,
//! their contents never repeated in an error), and a failed handshake said in one line.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_nats::rustls;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::{Error, Result};

/// PEM files larger than this are refused: a CA bundle or a key is a few kilobytes.
const MAX_PEM_BYTES: u64 = 1 << 20;

/// The TLS files of a NATS connection. With none of them (and a `nats://` URL) the
/// connection is TLS only when the server asks for it, verified against the system's CAs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NatsTls {
    /// CA certificates (PEM) the server's certificate must be signed by, instead of the
    /// system's.
    pub ca: Option<PathBuf>,
    /// The client certificate (PEM) for servers that verify clients, with `key`.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

impl NatsTls {
    /// Whether any TLS file was given (then the connection must be TLS).
    pub fn is_set(&self) -> bool {
        self.ca.is_some() || self.cert.is_some() || self.key.is_some()
    }

    /// The rustls configuration of these files; `None` when no file is given (async-nats then
    /// uses the system's CAs if the server asks for TLS).
    pub(crate) fn client_config(&self) -> Result<Option<rustls::ClientConfig>> {
        if !self.is_set() {
            return Ok(None);
        }
        let mut roots = rustls::RootCertStore::empty();
        match &self.ca {
            Some(ca) => {
                let certs = certificates("--nats-tls-ca", ca)?;
                let (added, _ignored) = roots.add_parsable_certificates(certs);
                if added == 0 {
                    return Err(bad_file(
                        "--nats-tls-ca",
                        ca,
                        "holds no usable CA certificate",
                    ));
                }
            }
            None => {
                let native = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(native.certs);
            }
        }
        // ring explicitly: the process-wide default provider is not chosen when more than
        // one is compiled in.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::invalid("TLS", "", e.to_string()))?
            .with_root_certificates(roots);
        let config = match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => {
                let chain = certificates("--nats-tls-cert", cert)?;
                let key_der = private_key(key)?;
                builder.with_client_auth_cert(chain, key_der).map_err(|_| {
                    bad_file(
                        "--nats-tls-key",
                        key,
                        "is not the key of the certificate in --nats-tls-cert",
                    )
                })?
            }
            (None, None) => builder.with_no_client_auth(),
            _ => {
                return Err(Error::invalid(
                    "TLS client certificate",
                    "",
                    "give both --nats-tls-cert and --nats-tls-key",
                ))
            }
        };
        Ok(Some(config))
    }
}

fn bad_file(flag: &str, path: &Path, reason: &str) -> Error {
    Error::invalid(flag, &path.display().to_string(), reason.to_string())
}

fn read_pem(flag: &str, path: &Path) -> Result<Vec<u8>> {
    crate::image::local::read_blocking(path, MAX_PEM_BYTES)
        .map_err(|e| Error::invalid(flag, &path.display().to_string(), e.to_string()))
}

fn certificates(flag: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let pem = read_pem(flag, path)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| bad_file(flag, path, "is not a PEM certificate file"))?;
    if certs.is_empty() {
        return Err(bad_file(flag, path, "holds no PEM certificate"));
    }
    Ok(certs)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    let pem = read_pem("--nats-tls-key", path)?;
    PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|_| bad_file("--nats-tls-key", path, "holds no PEM private key"))
}

/// One line for a failed TLS handshake with the server at `url`, from the error's text
/// (rustls's reasons are only reachable as text through async-nats).
pub(crate) fn explain(url: &str, tls: &NatsTls, text: &str) -> String {
    let has = |s: &str| text.contains(s);
    if has("UnknownIssuer") || has("BadSignature") {
        match &tls.ca {
            Some(ca) => format!(
                "TLS: the certificate of the server at {url} is not signed by CA {}",
                ca.display()
            ),
            None => format!(
                "TLS: the certificate of the server at {url} is not signed by a CA this \
                 machine trusts (give the server's CA with --nats-tls-ca)"
            ),
        }
    } else if has("NotValidForName") {
        format!("TLS: the certificate of the server at {url} is not valid for that host name")
    } else if has("Expired") || has("NotValidYet") {
        format!("TLS: the certificate of the server at {url} has expired or is not valid yet")
    } else if has("CertificateRequired") || has("HandshakeFailure") || has("BadCertificate") {
        format!(
            "TLS: the server at {url} did not accept this client's certificate (it verifies \
             clients: give one its CA signed with --nats-tls-cert and --nats-tls-key)"
        )
    } else if has("InvalidContentType") || has("CorruptMessage") {
        format!("TLS: the server at {url} does not speak TLS")
    } else {
        format!("TLS: the handshake with the server at {url} failed: {text}")
    }
}
