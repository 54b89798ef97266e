//! What the issuer policy costs:
//! - `component start` → first successful call of greeter signed, on a host with
//!   `--allowed-issuer`, vs greeter unsigned on a host without a policy (same NATS server, same
//!   warm compiled-component cache, interleaved rounds, a fresh component id each round);
//! - the raw claim check (`trellis_claims::verify_component`: find the section, hash the rest,
//!   check the Ed25519 signature) on greeter and on greeter-py (~18 MB), beside a plain sha256
//!   of the same bytes, interleaved.
//!
//! Run: `cargo build --release --bins && cargo bench -p trellis-tests --bench signing`.

use std::time::Instant;

use sha2::Digest as _;
use trellis_claims::keys::{generate, KeyKind};
use trellis_claims::sign::{sign_component, Details};
use trellis_claims::verify::{self, Issuers};
use trellis_lattice::control::ScaleComponent;
use trellis_tests::stats::{report, Samples};
use trellis_tests::{HostProcess, NatsServer};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let issuer = generate(KeyKind::Issuer);
    raw_verify(&issuer, "greeter", 1000)?;
    raw_verify(&issuer, "greeter-py", 30)?;
    starts(&issuer, 30).await
}

fn signed(issuer: &nkeys::KeyPair, component: &str) -> anyhow::Result<Vec<u8>> {
    let bytes = std::fs::read(trellis_tests::component(component))?;
    let details = Details {
        name: Some(component.into()),
        issued_at: verify::now(),
        ..Details::default()
    };
    Ok(sign_component(&bytes, issuer, &generate(KeyKind::Component), &details)?.0)
}

fn raw_verify(issuer: &nkeys::KeyPair, component: &str, runs: usize) -> anyhow::Result<()> {
    let bytes = signed(issuer, component)?;
    let allowed = [issuer.public_key()];
    let (mut check, mut hash) = (Samples::default(), Samples::default());
    for run in 0..runs + runs / 10 {
        let t = Instant::now();
        let v = verify::verify_component(&bytes, Issuers::OneOf(&allowed), verify::now())?;
        let took = t.elapsed();
        std::hint::black_box(v);
        let t = Instant::now();
        std::hint::black_box(sha2::Sha256::digest(&bytes));
        let hashed = t.elapsed();
        // The first tenth warms caches; not samples.
        if run >= runs / 10 {
            check.push(took);
            hash.push(hashed);
        }
    }
    println!(
        "{component} ({} bytes signed): claim check vs sha256 of the same bytes, {runs} interleaved runs each:",
        bytes.len()
    );
    report("  verify_component (section walk, sha256, Ed25519)", &check);
    report("  sha256 alone", &hash);
    println!(
        "  ratio p50 {:.2}",
        check.median().as_secs_f64() / hash.median().as_secs_f64()
    );
    Ok(())
}

fn start(id: &str, image: &std::path::Path) -> ScaleComponent {
    ScaleComponent {
        component_id: id.to_string(),
        image: format!("file://{}", image.display()),
        replicas: 1,
        ..Default::default()
    }
}

async fn starts(issuer: &nkeys::KeyPair, runs: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let signed_path = dir.path().join("greeter.signed.wasm");
    std::fs::write(&signed_path, signed(issuer, "greeter")?)?;
    let unsigned_path = dir.path().join("greeter.wasm");
    std::fs::copy(trellis_tests::component("greeter"), &unsigned_path)?;
    let cache = dir.path().join("cache").display().to_string();

    let nats = NatsServer::start().await;
    let key = issuer.public_key();
    let on = HostProcess::start(
        &nats.url(),
        "signbench",
        &[],
        &["--cache-dir", &cache, "--allowed-issuer", &key],
    )
    .await;
    let off = HostProcess::start(&nats.url(), "signbench", &[], &["--cache-dir", &cache]).await;
    let client = nats.client("signbench").await;
    let args = [serde_json::json!("Ada")];
    let (mut with, mut without) = (Samples::default(), Samples::default());
    // Round 0 compiles each into the shared cache; not a sample.
    for run in 0..=runs {
        for (host, image, samples) in [
            (&on, &signed_path, &mut with),
            (&off, &unsigned_path, &mut without),
        ] {
            let id = format!("g{run}");
            let t = Instant::now();
            client
                .scale_component(host.id(), &start(&id, image))
                .await?;
            let v = client.call(&id, "greet", &args).await?;
            let took = t.elapsed();
            anyhow::ensure!(v == "Hello, Ada!");
            let mut stop = start(&id, image);
            stop.replicas = 0;
            client.scale_component(host.id(), &stop).await?;
            if run > 0 {
                samples.push(took);
            }
        }
    }
    println!(
        "greeter: component start -> first successful call (warm compiled cache, {runs} interleaved runs each):"
    );
    report("  signed, host with --allowed-issuer", &with);
    report("  unsigned, host without a policy", &without);
    println!(
        "  ratio p50 {:.2}",
        with.median().as_secs_f64() / without.median().as_secs_f64()
    );
    Ok(())
}
