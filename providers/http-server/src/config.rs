//! The server's settings, from its named config.

use std::net::SocketAddr;
use std::time::Duration;

use trellis_provider::Config;

/// Request bodies larger than this are refused with 413 unless configured otherwise.
pub const DEFAULT_MAX_BODY: u64 = 16 << 20;
/// Requests that take longer get 504 unless configured otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerConfig {
    pub address: SocketAddr,
    pub max_body_bytes: u64,
    pub timeout: Duration,
    /// Server threads (each with its own runtime and listening socket).
    pub threads: usize,
}

impl ServerConfig {
    /// Keys: `address` (required, e.g. `127.0.0.1:8080`), `max_body` (e.g. `1MiB`),
    /// `timeout` (e.g. `10s`), `threads` (default: one per core).
    pub fn from_config(c: &Config) -> Result<Self, String> {
        let address = c.get("address").ok_or(
            "the HTTP server needs an `address` in its config (e.g. `trellis config put web address=127.0.0.1:8080`, then `--config web`)",
        )?;
        let address = address.parse().map_err(|_| {
            format!("config `address` {address:?} is not HOST:PORT (e.g. 127.0.0.1:8080)")
        })?;
        let max_body_bytes = match c.get("max_body") {
            Some(v) => trellis_lattice::units::parse_bytes(v)
                .map_err(|e| format!("config `max_body`: {e}"))?,
            None => DEFAULT_MAX_BODY,
        };
        let timeout = match c.get("timeout") {
            Some(v) => {
                humantime::parse_duration(v).map_err(|e| format!("config `timeout` {v:?}: {e}"))?
            }
            None => DEFAULT_TIMEOUT,
        };
        let threads = match c.get("threads") {
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=256).contains(n))
                .ok_or_else(|| format!("config `threads` {v:?} must be a number from 1 to 256"))?,
            None => std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
        };
        Ok(Self {
            address,
            max_body_bytes,
            timeout,
            threads,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_explains() {
        let mut c = Config::new();
        let err = ServerConfig::from_config(&c).unwrap_err();
        assert!(err.contains("address"), "{err}");
        c.insert("address".into(), "127.0.0.1:8080".into());
        let s = ServerConfig::from_config(&c).unwrap();
        assert_eq!(s.max_body_bytes, DEFAULT_MAX_BODY);
        c.insert("max_body".into(), "1KiB".into());
        c.insert("timeout".into(), "2s".into());
        let s = ServerConfig::from_config(&c).unwrap();
        assert_eq!(
            (s.max_body_bytes, s.timeout),
            (1024, Duration::from_secs(2))
        );
        assert!(s.threads >= 1, "one thread per core by default");
        c.insert("threads".into(), "3".into());
        assert_eq!(ServerConfig::from_config(&c).unwrap().threads, 3);
        for bad in ["0", "many", "1000"] {
            c.insert("threads".into(), bad.into());
            let err = ServerConfig::from_config(&c).unwrap_err();
            assert!(err.contains("threads") && err.contains(bad), "{err}");
        }
        c.remove("threads");
        c.insert("address".into(), "localhost".into());
        assert!(ServerConfig::from_config(&c).is_err());
    }
}
