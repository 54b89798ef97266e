//! Which broker a link names and how to speak to it, from the link's named config:
//!
//! | key | meaning | default |
//! |---|---|---|
//! | `url` | `mqtt://host:1883` or `mqtts://host:8883` | required |
//! | `user`, `password` | credentials (never logged) | none |
//! | `ca-file` | PEM CA bundle for `mqtts://` | the system's roots |
//! | `cert-file`, `key-file` | PEM client certificate and key | none |
//! | `client-id` | MQTT client id of a subscription (its durable session) | `trellis-{provider}-{link}-{host}` |
//! | `qos` | `0` or `1`: publishes and subscriptions | `1` |
//! | `retain` | `true`: publishes are retained | `false` |
//! | `max-payload` | largest payload sent or received, bytes | 1 MiB |
//! | `keep-alive` | seconds between pings | 10 |
//! | `session-expiry` | seconds the broker keeps a subscription's session while it is away | 3600 |

use std::io::Read as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::MqttOptions;
use rumqttc::{TlsConfiguration, Transport};
use trellis_provider::Config;
use trellis_provider_messaging::config::ConfigError;

pub const DEFAULT_MAX_PAYLOAD: usize = 1 << 20;
pub const MAX_MAX_PAYLOAD: usize = 256 << 20;
/// The largest PEM file read for TLS.
pub const MAX_PEM_FILE: u64 = 1 << 20;
/// Room for a packet's topic and properties beyond its payload.
const PACKET_OVERHEAD: usize = 64 << 10;

/// One broker connection's identity: a link naming the same one shares it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Broker {
    pub host: String,
    pub port: u16,
    pub tls: bool,
    pub user: Option<String>,
    pub password: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub keep_alive: Duration,
    pub max_payload: usize,
}

/// How a link publishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Publishing {
    pub qos: QoS,
    pub retain: bool,
}

fn value<'a>(config: &'a Config, key: &str) -> Option<&'a str> {
    config.get(key).map(|v| v.trim()).filter(|v| !v.is_empty())
}

fn number(
    config: &Config,
    key: &str,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<u64, ConfigError> {
    match value(config, key) {
        None => Ok(default),
        Some(v) => v
            .parse::<u64>()
            .ok()
            .filter(|n| range.contains(n))
            .ok_or_else(|| {
                ConfigError::new(
                    key,
                    format!("must be a number from {} to {}", range.start(), range.end()),
                )
            }),
    }
}

pub fn qos(config: &Config) -> Result<QoS, ConfigError> {
    match value(config, "qos") {
        None | Some("1") => Ok(QoS::AtLeastOnce),
        Some("0") => Ok(QoS::AtMostOnce),
        Some(_) => Err(ConfigError::new("qos", "must be 0 or 1")),
    }
}

impl Publishing {
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        let retain = match value(config, "retain") {
            None | Some("false") => false,
            Some("true") => true,
            Some(_) => return Err(ConfigError::new("retain", "must be true or false")),
        };
        Ok(Self {
            qos: qos(config)?,
            retain,
        })
    }
}

/// The seconds a subscription's session outlives its connection.
pub fn session_expiry(config: &Config) -> Result<u32, ConfigError> {
    Ok(number(config, "session-expiry", 3600, 0..=u32::MAX as u64)? as u32)
}

impl Broker {
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        let raw = value(config, "url").ok_or_else(|| {
            ConfigError::new("url", "names no broker (e.g. url=mqtt://127.0.0.1:1883)")
        })?;
        let url = url::Url::parse(raw)
            .map_err(|_| ConfigError::new("url", "is not a URL like mqtt://host:1883"))?;
        let tls = match url.scheme() {
            "mqtt" | "tcp" => false,
            "mqtts" | "ssl" => true,
            other => {
                return Err(ConfigError::new(
                    "url",
                    format!("scheme `{other}` is not mqtt:// or mqtts://"),
                ))
            }
        };
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| ConfigError::new("url", "names no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = url.port().unwrap_or(if tls { 8883 } else { 1883 });
        let from_url = |s: &str| (!s.is_empty()).then(|| s.to_string());
        let path = |key: &str| value(config, key).map(PathBuf::from);
        let broker = Self {
            host,
            port,
            tls,
            user: value(config, "user")
                .map(str::to_string)
                .or_else(|| from_url(url.username())),
            password: value(config, "password")
                .map(str::to_string)
                .or_else(|| url.password().map(str::to_string)),
            ca_file: path("ca-file"),
            cert_file: path("cert-file"),
            key_file: path("key-file"),
            keep_alive: Duration::from_secs(number(config, "keep-alive", 10, 5..=3600)?),
            max_payload: number(
                config,
                "max-payload",
                DEFAULT_MAX_PAYLOAD as u64,
                1..=MAX_MAX_PAYLOAD as u64,
            )? as usize,
        };
        if !tls && (broker.ca_file.is_some() || broker.cert_file.is_some()) {
            return Err(ConfigError::new(
                "url",
                "TLS files are given but the URL is not mqtts://",
            ));
        }
        if broker.cert_file.is_some() != broker.key_file.is_some() {
            return Err(ConfigError::new(
                "cert-file",
                "a client certificate needs both cert-file and key-file",
            ));
        }
        Ok(broker)
    }

    /// The broker for messages and logs: scheme, host and port, never credentials.
    pub fn display(&self) -> String {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        format!("{scheme}://{}:{}", self.host, self.port)
    }

    /// Client options; reads the TLS files (blocking: call from a blocking thread).
    pub fn options(&self, client_id: &str) -> Result<MqttOptions, String> {
        let mut o = MqttOptions::new(client_id, &self.host, self.port);
        // Small packets one after the other (a publish, then an ack): without this, Nagle
        // and the peer's delayed ACK add tens of milliseconds to each.
        let mut network = rumqttc::NetworkOptions::new();
        network.set_tcp_nodelay(true);
        o.set_network_options(network);
        o.set_keep_alive(self.keep_alive);
        o.set_connection_timeout(5);
        let packet = (self.max_payload + PACKET_OVERHEAD).min(u32::MAX as usize) as u32;
        o.set_max_packet_size(Some(packet));
        if let (Some(u), Some(p)) = (&self.user, &self.password) {
            o.set_credentials(u.clone(), p.clone());
        } else if let Some(u) = &self.user {
            o.set_credentials(u.clone(), String::new());
        }
        if self.tls {
            o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
                Arc::new(self.tls_config()?),
            )));
        }
        Ok(o)
    }

    fn tls_config(&self) -> Result<rustls::ClientConfig, String> {
        let mut roots = rustls::RootCertStore::empty();
        match &self.ca_file {
            Some(path) => {
                for cert in read_pem(path, "ca-file")?.into_certs("ca-file")? {
                    roots
                        .add(cert)
                        .map_err(|_| "ca-file holds a certificate rustls cannot use".to_string())?;
                }
            }
            None => {
                for cert in rustls_native_certs::load_native_certs().certs {
                    let _ = roots.add(cert);
                }
            }
        }
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots);
        match (&self.cert_file, &self.key_file) {
            (Some(cert), Some(key)) => {
                let certs = read_pem(cert, "cert-file")?.into_certs("cert-file")?;
                let key = read_pem(key, "key-file")?.into_key("key-file")?;
                builder.with_client_auth_cert(certs, key).map_err(|_| {
                    "cert-file and key-file do not make a usable client certificate".to_string()
                })
            }
            _ => Ok(builder.with_no_client_auth()),
        }
    }
}

/// A PEM file's bytes, read whole within [`MAX_PEM_FILE`].
struct Pem(Vec<u8>);

/// Reads a regular file of at most [`MAX_PEM_FILE`] bytes. Errors name the key and the
/// path, never what the file holds.
fn read_pem(path: &std::path::Path, key: &str) -> Result<Pem, String> {
    let cannot = |why: &str| format!("{key} {}: {why}", path.display());
    let file = std::fs::File::open(path).map_err(|e| cannot(&e.kind().to_string()))?;
    let meta = file.metadata().map_err(|e| cannot(&e.kind().to_string()))?;
    if !meta.is_file() {
        return Err(cannot("not a regular file"));
    }
    let mut bytes = Vec::new();
    file.take(MAX_PEM_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| cannot(&e.kind().to_string()))?;
    if bytes.len() as u64 > MAX_PEM_FILE {
        return Err(cannot(&format!("larger than {MAX_PEM_FILE} bytes")));
    }
    Ok(Pem(bytes))
}

impl Pem {
    fn into_certs(
        self,
        key: &str,
    ) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, String> {
        let certs: Vec<_> = rustls_pemfile::certs(&mut self.0.as_slice())
            .collect::<Result<_, _>>()
            .map_err(|_| format!("{key} is not a PEM certificate file"))?;
        if certs.is_empty() {
            return Err(format!("{key} holds no PEM certificate"));
        }
        Ok(certs)
    }

    fn into_key(self, key: &str) -> Result<rustls::pki_types::PrivateKeyDer<'static>, String> {
        rustls_pemfile::private_key(&mut self.0.as_slice())
            .ok()
            .flatten()
            .ok_or_else(|| format!("{key} holds no PEM private key"))
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
    fn urls_and_defaults() {
        let b = Broker::from_config(&cfg(&[("url", "mqtt://127.0.0.1")])).unwrap();
        assert_eq!((b.host.as_str(), b.port, b.tls), ("127.0.0.1", 1883, false));
        assert_eq!(b.max_payload, DEFAULT_MAX_PAYLOAD);
        let b = Broker::from_config(&cfg(&[("url", "mqtts://u:secret@broker.example")])).unwrap();
        assert_eq!((b.port, b.tls, b.user.as_deref()), (8883, true, Some("u")));
        assert_eq!(
            b.display(),
            "mqtts://broker.example:8883",
            "no credentials shown"
        );
        let p = Publishing::from_config(&cfg(&[("qos", "0"), ("retain", "true")])).unwrap();
        assert_eq!((p.qos, p.retain), (QoS::AtMostOnce, true));
    }

    #[test]
    fn unusable_configs_name_their_key() {
        let err = |pairs: &[(&str, &str)]| Broker::from_config(&cfg(pairs)).unwrap_err().key;
        assert_eq!(err(&[]), "url");
        assert_eq!(err(&[("url", "http://x")]), "url");
        assert_eq!(err(&[("url", "not a url")]), "url");
        assert_eq!(err(&[("url", "mqtt://x"), ("ca-file", "/x")]), "url");
        assert_eq!(
            err(&[("url", "mqtts://x"), ("cert-file", "/x")]),
            "cert-file"
        );
        assert_eq!(
            err(&[("url", "mqtt://x"), ("max-payload", "0")]),
            "max-payload"
        );
        assert_eq!(
            Publishing::from_config(&cfg(&[("qos", "2")]))
                .unwrap_err()
                .key,
            "qos"
        );
    }

    #[test]
    fn tls_files_must_be_regular_pem_files_and_are_never_echoed() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "root:TOPSECRET:19000:0:99999:7:::\n").unwrap();
        let b = |ca: &std::path::Path| {
            Broker::from_config(&cfg(&[
                ("url", "mqtts://x"),
                ("ca-file", ca.to_str().unwrap()),
            ]))
            .unwrap()
        };
        let err = b(&secret).options("c").unwrap_err();
        assert!(
            err.contains("no PEM certificate") && !err.contains("TOPSECRET"),
            "{err}"
        );
        let err = b(dir.path()).options("c").unwrap_err();
        assert!(err.contains("not a regular file"), "{err}");
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'a'; MAX_PEM_FILE as usize + 10]).unwrap();
        let err = b(&big).options("c").unwrap_err();
        assert!(err.contains("larger than"), "{err}");
    }
}
