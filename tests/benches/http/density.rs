//! Density: how many idle components one host holds, distinct and sharing an artifact.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use trellis_lattice::LatticeClient;
use trellis_tests::stats::{fmt, Samples};
use trellis_tests::{component_ref, HostProcess, NatsServer};

use crate::load::{median, rss_kib};
use crate::{find_wasmtime, hello};

/// 1,000 idle components on one host, twice: really distinct components (each its own bytes,
/// digest and compiled artifact: hello-http with a custom section holding its number), and
/// copies of one component under different ids (sharing one compiled artifact).
pub async fn density(nats: &NatsServer, scratch: &Path) -> anyhow::Result<()> {
    let n = 1000;
    let original = std::fs::read(trellis_tests::component("hello-http"))?;
    let dir = scratch.join("variants");
    std::fs::create_dir_all(&dir)?;
    let mut distinct = Vec::with_capacity(n);
    for i in 0..n {
        let path = dir.join(format!("hello-{i:04}.wasm"));
        std::fs::write(
            &path,
            with_custom_section(
                &original,
                "trellis-bench-variant",
                &(i as u32).to_le_bytes(),
            ),
        )?;
        distinct.push(format!("file://{}", path.display()));
    }
    let shared = vec![component_ref("hello-http"); n];
    for (round, (what, images)) in [
        (
            "distinct components (own digest and compiled artifact each)",
            distinct,
        ),
        (
            "copies of one component (one shared compiled artifact)",
            shared,
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let lattice = format!("density{round}");
        let cache = tempfile::tempdir()?;
        let h = HostProcess::start(
            &nats.url(),
            &lattice,
            &[],
            &["--cache-dir", &cache.path().display().to_string()],
        )
        .await;
        let c: LatticeClient = nats.client(&lattice).await;
        let pid = h.pid().unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let before = rss_kib(pid);
        let mut starts = Samples::default();
        let began = Instant::now();
        for (i, image) in images.iter().enumerate() {
            let mut req = hello(&format!("c-{i:04}"), 1);
            req.image = image.clone();
            let t = Instant::now();
            c.scale_component(h.id(), &req).await?;
            starts.push(t.elapsed());
        }
        let total = began.elapsed();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let after = rss_kib(pid);
        println!("density: {n} idle {what} on one host:");
        println!(
            "  host RSS {:.1} MiB -> {:.1} MiB: {:.1} KiB per component",
            before as f64 / 1024.0,
            after as f64 / 1024.0,
            (after.saturating_sub(before)) as f64 / n as f64
        );
        println!(
            "  start per component (with its compile, if any): p50 {} (p99 {}), {} for all {n}",
            fmt(starts.median()),
            fmt(starts.percentile(0.99)),
            fmt(total)
        );
    }
    Ok(())
}

/// `component` with a custom section appended (a component may hold custom sections
/// anywhere between its sections): other bytes, the same code.
fn with_custom_section(component: &[u8], name: &str, payload: &[u8]) -> Vec<u8> {
    fn leb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let mut body = Vec::new();
    leb(name.len(), &mut body);
    body.extend_from_slice(name.as_bytes());
    body.extend_from_slice(payload);
    let mut out = component.to_vec();
    out.push(0);
    leb(body.len(), &mut out);
    out.extend_from_slice(&body);
    out
}

/// `wasmtime compile` of the component, net of the tool's own start-up (`wasmtime --version`),
/// as a same-run reference for the compile-bound cold start.
pub fn wasmtime_compile_ms(component: &Path, runs: usize) -> (f64, f64) {
    let wasmtime = find_wasmtime();
    let out = tempfile::tempdir().expect("tempdir");
    let time = |args: &[&std::ffi::OsStr]| {
        let t = Instant::now();
        let status = Command::new(&wasmtime)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("running wasmtime");
        assert!(status.success());
        t.elapsed().as_secs_f64() * 1000.0
    };
    let cwasm = out.path().join("c.cwasm");
    let mut compile = Vec::new();
    let mut version = Vec::new();
    for _ in 0..runs {
        compile.push(time(&[
            "compile".as_ref(),
            "-o".as_ref(),
            cwasm.as_os_str(),
            component.as_os_str(),
        ]));
        version.push(time(&["--version".as_ref()]));
    }
    (median(compile), median(version))
}
