//! The NATS side of `trellis up`: whether a server answers, starting one (protected with the
//! credentials `up` was given, when nats-server takes them as they are), and the credentials
//! and TLS files the host and the manager get.

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context as _};
use trellis_lattice::client::NatsOptions;
use trellis_lattice::NatsAuth;

use super::children::{find_program, Children, Spec};
use crate::global::Global;

/// The environment of the host and the manager: the NATS credentials and TLS files `up`
/// itself uses (in the environment, not on their command line, where `ps` would show a
/// secret). Credentials from `up`'s own environment that it does not use are removed.
pub(super) fn auth_env(
    nats: &NatsOptions,
) -> anyhow::Result<Vec<(&'static str, Option<OsString>)>> {
    let mut env: Vec<(&'static str, Option<OsString>)> = [
        "NATS_CREDS",
        "NATS_NKEY",
        "NATS_USER",
        "NATS_PASSWORD",
        "NATS_TOKEN",
        "NATS_TLS_CA",
        "NATS_TLS_CERT",
        "NATS_TLS_KEY",
    ]
    .into_iter()
    .map(|k| (k, None))
    .collect();
    let mut set = |key: &str, value: OsString| {
        if let Some(e) = env.iter_mut().find(|(k, _)| *k == key) {
            e.1 = Some(value);
        }
    };
    // Detached children keep running wherever the user goes next: paths are absolute.
    let absolute = |flag: &str, path: &Path| {
        std::path::absolute(path)
            .map(|p| p.into_os_string())
            .with_context(|| format!("{flag} {}", path.display()))
    };
    let tls = &nats.tls;
    for (key, flag, file) in [
        ("NATS_TLS_CA", "--nats-tls-ca", &tls.ca),
        ("NATS_TLS_CERT", "--nats-tls-cert", &tls.cert),
        ("NATS_TLS_KEY", "--nats-tls-key", &tls.key),
    ] {
        if let Some(path) = file {
            set(key, absolute(flag, path)?);
        }
    }
    match &nats.auth {
        NatsAuth::None => {}
        NatsAuth::CredsFile(path) => set("NATS_CREDS", absolute("--nats-creds", path)?),
        NatsAuth::NkeySeed(seed) => set("NATS_NKEY", seed.into()),
        NatsAuth::UserPassword { user, password } => {
            set("NATS_USER", user.into());
            set("NATS_PASSWORD", password.into());
        }
        NatsAuth::Token(token) => set("NATS_TOKEN", token.into()),
    }
    Ok(env)
}

/// What a NATS URL answers.
pub(super) enum Probe {
    /// A server that accepted our connection.
    Answers,
    /// Something listens there but did not accept us (credentials, or not NATS).
    Refused(anyhow::Error),
    /// Nothing listens.
    Silent,
}

pub(super) async fn probe(url: &str, nats: &NatsOptions) -> Probe {
    let attempt = tokio::time::timeout(
        Duration::from_secs(5),
        trellis_lattice::client::connect(url, nats, "trellis-up-probe"),
    )
    .await;
    match attempt {
        Ok(Ok(_)) => Probe::Answers,
        Ok(Err(e)) if listens(url).await => Probe::Refused(e.into()),
        Err(_) if listens(url).await => Probe::Refused(anyhow::anyhow!("no answer within 5s")),
        _ => Probe::Silent,
    }
}

/// Whether anything accepts TCP connections at the URL's address.
async fn listens(url: &str) -> bool {
    let Ok((host, port)) = host_port(url) else {
        return false;
    };
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    tokio::time::timeout(
        Duration::from_secs(2),
        tokio::net::TcpStream::connect((host.as_str(), port)),
    )
    .await
    .is_ok_and(|r| r.is_ok())
}

/// Host and port of a NATS URL (4222 when it names none).
fn host_port(url: &str) -> anyhow::Result<(String, u16)> {
    let rest = url.split("://").nth(1).unwrap_or(url);
    let hostport = rest
        .rsplit('@')
        .next()
        .unwrap_or(rest)
        .trim_end_matches('/');
    Ok(match hostport.rsplit_once(':') {
        Some((h, p)) if !hostport.ends_with(']') => (
            h.to_string(),
            p.parse()
                .with_context(|| format!("port in NATS URL {url}"))?,
        ),
        _ => (hostport.to_string(), 4222),
    })
}

/// The address `up` starts nats-server on: only one on this machine.
fn nats_port(url: &str) -> anyhow::Result<(String, u16)> {
    let (host, port) = host_port(url)?;
    if !matches!(
        host.as_str(),
        "127.0.0.1" | "localhost" | "0.0.0.0" | "::1" | "[::1]"
    ) {
        bail!("no NATS server answers at {url}, and `trellis up` only starts one on this machine (use a 127.0.0.1 URL)");
    }
    Ok((
        if host == "localhost" {
            "127.0.0.1".into()
        } else {
            host
        },
        port,
    ))
}

/// The server configuration that makes clients authenticate as `up` was told to, for the
/// kinds nats-server takes without an account setup (a token, a user and password).
fn nats_auth_config(auth: &NatsAuth) -> anyhow::Result<Option<String>> {
    let quote = |s: &str| serde_json::to_string(s);
    Ok(match auth {
        NatsAuth::None => None,
        NatsAuth::Token(token) => Some(format!(
            "authorization {{\n  token: {}\n}}\n",
            quote(token)?
        )),
        NatsAuth::UserPassword { user, password } => Some(format!(
            "authorization {{\n  user: {}\n  password: {}\n}}\n",
            quote(user)?,
            quote(password)?
        )),
        NatsAuth::CredsFile(_) | NatsAuth::NkeySeed(_) => {
            eprintln!("note: the nats-server `trellis up` starts accepts every client; a creds file or an nkey needs a server configured for it");
            None
        }
    })
}

pub(super) async fn start_nats(
    g: &Global,
    dir: &Path,
    children: &mut Children,
) -> anyhow::Result<()> {
    let (addr, port) = nats_port(&g.nats_url)?;
    if g.nats.tls.is_set() || g.nats_url.starts_with("tls://") {
        bail!("no NATS server answers at {}, and `trellis up` starts one only without TLS: start a nats-server with TLS yourself (examples/secure shows how) and `up` joins it", g.nats_url);
    }
    let Some(nats) = find_program("nats-server") else {
        bail!("nats-server is not installed: install it with `apt-get install nats-server` (Debian, Ubuntu) or from https://github.com/nats-io/nats-server/releases");
    };
    let store = dir.join("jetstream");
    let mut args: Vec<String> = vec![
        "-a".into(),
        addr,
        "-p".into(),
        port.to_string(),
        "-js".into(),
        "-sd".into(),
        store.display().to_string(),
    ];
    let protected = match nats_auth_config(&g.nats.auth)? {
        Some(text) => {
            use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
            let path = dir.join("nats-auth.conf");
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .mode(0o600)
                .open(&path)
                .with_context(|| format!("writing {}", path.display()))?;
            file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
            std::io::Write::write_all(&mut file, text.as_bytes())?;
            args.extend(["-c".into(), path.display().to_string()]);
            true
        }
        None => false,
    };
    children.spawn(Spec {
        role: "the NATS server",
        name: "nats-server",
        tag: "nats",
        program: &nats,
        args,
        env: Vec::new(),
    })?;
    let url = g.nats_url.clone();
    children
        .while_running(
            "nats-server to accept connections",
            Duration::from_secs(10),
            async {
                while !matches!(probe(&url, &g.nats).await, Probe::Answers) {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Ok(())
            },
        )
        .await?;
    eprintln!(
        "started nats-server with JetStream on {}{}",
        g.nats_url,
        if protected {
            " (clients must give the same credentials)"
        } else {
            ""
        }
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_give_their_host_and_port() {
        assert_eq!(
            host_port("nats://127.0.0.1:4333").unwrap(),
            ("127.0.0.1".to_string(), 4333)
        );
        assert_eq!(
            host_port("nats://ada:pw@localhost").unwrap(),
            ("localhost".to_string(), 4222)
        );
        assert_eq!(
            host_port("nats://[::1]:4222").unwrap(),
            ("[::1]".to_string(), 4222)
        );
        assert_eq!(nats_port("localhost:5000").unwrap().0, "127.0.0.1");
        assert!(nats_port("nats://nats.example.com:4222").is_err());
        assert!(host_port("nats://127.0.0.1:port").is_err());
    }

    #[test]
    fn children_get_exactly_the_credentials_up_uses() {
        let env = auth_env(&NatsAuth::Token("s3cret".into()).into()).unwrap();
        assert_eq!(env.len(), 8);
        for (key, value) in &env {
            let expected = (*key == "NATS_TOKEN").then(|| OsString::from("s3cret"));
            assert_eq!(value, &expected, "{key}");
        }
        let env = auth_env(
            &NatsAuth::UserPassword {
                user: "ada".into(),
                password: "pw".into(),
            }
            .into(),
        )
        .unwrap();
        let set: Vec<_> = env.iter().filter(|(_, v)| v.is_some()).collect();
        assert_eq!(set.len(), 2);
        let env = auth_env(&NatsOptions {
            auth: NatsAuth::CredsFile("user.creds".into()),
            tls: trellis_lattice::client::NatsTls {
                ca: Some("ca.pem".into()),
                ..Default::default()
            },
        })
        .unwrap();
        for key in ["NATS_CREDS", "NATS_TLS_CA"] {
            let (_, value) = env.iter().find(|(k, _)| *k == key).unwrap();
            assert!(Path::new(value.as_ref().unwrap()).is_absolute(), "{key}");
        }
        assert!(auth_env(&NatsOptions::default())
            .unwrap()
            .iter()
            .all(|(_, v)| v.is_none()));
    }

    #[test]
    fn a_started_server_takes_the_token_or_the_password_quoted() {
        let conf = nats_auth_config(&NatsAuth::Token("a\"b".into()))
            .unwrap()
            .unwrap();
        assert!(conf.contains(r#"token: "a\"b""#), "{conf}");
        let conf = nats_auth_config(&NatsAuth::UserPassword {
            user: "ada".into(),
            password: "pw".into(),
        })
        .unwrap()
        .unwrap();
        assert!(conf.contains(r#"user: "ada""#) && conf.contains(r#"password: "pw""#));
        assert!(nats_auth_config(&NatsAuth::None).unwrap().is_none());
    }
}
