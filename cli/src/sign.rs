//! `trellis sign` and `trellis inspect`: claims embedded in components, and detached `.sig`
//! files next to provider executables.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use trellis_claims::keys::{self, KeyKind};
use trellis_claims::sign::{self, Details};
use trellis_claims::{files, section, verify, Claims};
use trellis_lattice::image::MAX_IMAGE_BYTES;

use crate::global::Global;
use crate::output::{print_json, Format};

#[derive(clap::Args)]
pub struct SignArgs {
    /// A WebAssembly component (the claim is embedded) or any other file, such as a provider
    /// executable (the claim goes to FILE.sig).
    file: PathBuf,
    /// The issuer's seed file (`trellis keys gen issuer`).
    #[arg(long, value_name = "SEEDFILE")]
    issuer: PathBuf,
    /// The component's seed file (`trellis keys gen component`); default: a fresh key.
    #[arg(long, value_name = "SEEDFILE")]
    subject: Option<PathBuf>,
    #[arg(long)]
    name: Option<String>,
    #[arg(long)]
    version: Option<String>,
    /// How long the claim is valid, e.g. `90d`; default: it does not expire.
    #[arg(long, value_parser = humantime::parse_duration)]
    expires: Option<Duration>,
    /// Where to write: default NAME.signed.wasm beside a component (a `.signed.wasm` is
    /// re-signed in place), FILE.sig for anything else.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct InspectArgs {
    /// A signed component, or an executable with its FILE.sig beside it.
    file: PathBuf,
}

/// Reads a file to sign or inspect, off the async threads.
async fn read(path: PathBuf, max: u64) -> anyhow::Result<Option<Vec<u8>>> {
    let shown = path.display().to_string();
    tokio::task::spawn_blocking(move || files::read_regular(&path, max))
        .await
        .context("reading a file")?
        .with_context(|| format!("reading {shown}"))
}

async fn read_required(path: &Path, max: u64) -> anyhow::Result<Vec<u8>> {
    read(path.to_path_buf(), max)
        .await?
        .with_context(|| format!("{}: no such file", path.display()))
}

fn sig_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".sig");
    PathBuf::from(name)
}

fn default_out(file: &Path) -> PathBuf {
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let stem = name.strip_suffix(".wasm").unwrap_or(&name);
    if stem.ends_with(".signed") {
        file.to_path_buf()
    } else {
        file.with_file_name(format!("{stem}.signed.wasm"))
    }
}

pub async fn sign(global: &Global, args: SignArgs) -> anyhow::Result<()> {
    let bytes = read_required(&args.file, MAX_IMAGE_BYTES).await?;
    let (issuer_path, subject_path) = (args.issuer.clone(), args.subject.clone());
    let (issuer, subject) = tokio::task::spawn_blocking(move || {
        let issuer = keys::read_seed_file(&issuer_path, KeyKind::Issuer)?;
        let subject = match subject_path {
            Some(p) => keys::read_seed_file(&p, KeyKind::Component)?,
            None => keys::generate(KeyKind::Component),
        };
        Ok::<_, trellis_claims::Error>((issuer, subject))
    })
    .await
    .context("reading seed files")??;
    let now = verify::now();
    let details = Details {
        name: args.name,
        version: args.version,
        issued_at: now,
        expires: args.expires.map(|d| now.saturating_add(d.as_secs())),
    };
    let file = args.file.display().to_string();
    let (out, data, claims) = if section::is_wasm(&bytes) {
        let (signed, claims) = sign::sign_component(&bytes, &issuer, &subject, &details)
            .with_context(|| format!("signing {file}"))?;
        let out = args.out.unwrap_or_else(|| default_out(&args.file));
        (out, signed, claims)
    } else {
        let (token, claims) = sign::sign_detached(&bytes, &issuer, &subject, &details)
            .with_context(|| format!("signing {file}"))?;
        let out = args.out.unwrap_or_else(|| sig_path(&args.file));
        (out, token.into_bytes(), claims)
    };
    let target = out.clone();
    tokio::task::spawn_blocking(move || files::write_atomic(&target, &data, 0o644, true))
        .await
        .context("writing the signed file")?
        .with_context(|| format!("writing {}", out.display()))?;
    match global.output {
        Format::Json => print_json(&serde_json::json!({
            "out": out.display().to_string(),
            "issuer": claims.issuer,
            "subject": claims.subject,
            "hash": claims.hash,
        })),
        Format::Table => {
            println!("signed {file} -> {}", out.display());
            println!("issuer   {}", claims.issuer);
            println!("subject  {}", claims.subject);
            println!("hash     {}", claims.hash);
            Ok(())
        }
    }
}

fn time(secs: u64) -> String {
    chrono::DateTime::from_timestamp(secs.min(i64::MAX as u64) as i64, 0)
        .map_or_else(|| secs.to_string(), |t| t.to_rfc3339())
}

fn verdict<E: std::fmt::Display>(r: &Result<(), E>) -> String {
    match r {
        Ok(()) => "ok".into(),
        Err(e) => format!("FAILED ({e})"),
    }
}

pub async fn inspect(global: &Global, args: InspectArgs) -> anyhow::Result<()> {
    let bytes = read_required(&args.file, MAX_IMAGE_BYTES).await?;
    let file = args.file.display().to_string();
    let now = verify::now();
    let report = if section::is_wasm(&bytes) {
        verify::inspect_component(&bytes, now)
    } else {
        let sig = sig_path(&args.file);
        let token = read(sig.clone(), files::MAX_SIG_FILE)
            .await?
            .ok_or(trellis_claims::Error::UnsignedDetached)
            .and_then(|t| {
                String::from_utf8(t).map_err(|_| trellis_claims::Error::Malformed("not text"))
            });
        token.and_then(|t| verify::inspect_detached(&bytes, &t, now))
    }
    .with_context(|| format!("inspecting {file}"))?;
    let Claims {
        issuer,
        subject,
        hash,
        name,
        version,
        issued_at,
        expires,
    } = &report.claims;
    match global.output {
        Format::Json => print_json(&serde_json::json!({
            "issuer": issuer,
            "subject": subject,
            "hash": hash,
            "actual_hash": report.actual_hash,
            "name": name,
            "version": version,
            "issued_at": time(*issued_at),
            "expires": expires.map(time),
            "signature_ok": report.signature.is_ok(),
            "hash_ok": report.hash.is_ok(),
            "time_ok": report.time.is_ok(),
        }))?,
        Format::Table => {
            println!("issuer     {issuer}");
            println!("subject    {subject}");
            println!("name       {}", name.as_deref().unwrap_or("-"));
            println!("version    {}", version.as_deref().unwrap_or("-"));
            println!("hash       {hash}");
            println!("issued at  {}", time(*issued_at));
            println!("expires    {}", expires.map_or("never".into(), time));
            println!("signature  {}", verdict(&report.signature));
            println!("bytes      {}", verdict(&report.hash));
            println!("validity   {}", verdict(&report.time));
        }
    }
    for check in [&report.signature, &report.hash, &report.time] {
        if let Err(e) = check {
            anyhow::bail!("{file}: the claim does not verify: {e}");
        }
    }
    Ok(())
}
