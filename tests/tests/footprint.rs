//! A host where the address space is scarce (`ulimit -v`, as on a small board): the pooling
//! allocator cannot reserve its slots, the host falls back to on-demand allocation, says so,
//! and still runs components — with the default sizing and with `--profile edge`.

use std::path::{Path, PathBuf};

use trellis_tests::{bin, init_logging, scale_request, HostProcess, NatsServer};

/// The address-space limit, in KiB (`ulimit -v`): about 1 GB.
const ADDRESS_SPACE_KIB: u64 = 1_000_000;

/// `trellis-host` under `ulimit -v`, as a script that [`HostProcess::start_binary`] can
/// start (the same as `bash -c 'ulimit -v ...; exec "$0" "$@"' trellis-host ...`).
fn limited_host(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let script = dir.join("trellis-host-ulimit");
    std::fs::write(
        &script,
        format!(
            "#!/bin/bash\nulimit -v {ADDRESS_SPACE_KIB}\nexec '{}' \"$@\"\n",
            bin("trellis-host").display()
        ),
    )
    .expect("writing the wrapper");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    script
}

/// The `VmPeak` of a process, in KiB.
fn vm_peak_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmPeak:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Starts a limited host with `extra` flags; checks it answers, reports the on-demand
/// allocator, and runs greeter (4 replicas, calls in parallel) within the limit. Returns its
/// inventory.
async fn runs_components_within_the_limit(
    lattice: &str,
    extra: &[&str],
) -> trellis_lattice::inventory::HostInventory {
    init_logging();
    let nats = NatsServer::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let wrapper = limited_host(dir.path());
    let mut flags = vec!["--ephemeral"];
    flags.extend_from_slice(extra);
    let host = HostProcess::start_binary(&wrapper, &nats.url(), lattice, &[], &flags).await;
    let client = nats.client(lattice).await;

    let hosts = client.hosts().await.expect("hosts");
    assert!(
        hosts.iter().any(|h| h.id == host.id()),
        "the limited host is not among {hosts:?}"
    );
    let inventory = client.inventory(host.id()).await.expect("inventory");
    assert_eq!(inventory.host_id, host.id());

    let log = host.log();
    assert!(
        log.contains("falling back to on-demand allocation"),
        "no fallback in the log:\n{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("host started") && l.contains("allocator=on-demand")),
        "the host does not report the on-demand allocator:\n{log}"
    );

    let mut start = scale_request("greeter", "greeter", 4);
    start.max_memory_bytes = Some(16 << 20);
    client
        .scale_component(host.id(), &start)
        .await
        .expect("greeter starts on the limited host");
    let calls = (0..16).map(|i| {
        let client = &client;
        async move {
            client
                .call(
                    "greeter",
                    "greet",
                    &[serde_json::json!(format!("board {i}"))],
                )
                .await
        }
    });
    for (i, answer) in futures::future::join_all(calls)
        .await
        .into_iter()
        .enumerate()
    {
        let answer = answer.unwrap_or_else(|e| {
            panic!(
                "greeter call {i} on the limited host failed: {e}\n{}",
                host.log()
            )
        });
        assert_eq!(answer, format!("Hello, board {i}!"));
    }
    let peak = host.pid().and_then(vm_peak_kib).expect("VmPeak");
    assert!(
        peak <= ADDRESS_SPACE_KIB,
        "VmPeak {peak} KiB beyond the limit?"
    );
    eprintln!("{lattice}: on-demand allocator, VmPeak {peak} KiB of {ADDRESS_SPACE_KIB} KiB");
    inventory
}

#[tokio::test]
async fn default_sizing_falls_back_to_on_demand_under_ulimit_v_and_runs_components() {
    let inventory = runs_components_within_the_limit("footprint-default", &[]).await;
    assert_eq!(inventory.heartbeat_interval_ms, 5_000);
}

/// `--profile edge` pools 16 instances with a 64 MiB ceiling, but each pooled memory slot is
/// wasmtime's 4 GiB reservation plus its guard (32 memory slots: over 128 GiB), so under a
/// 1 GB limit the edge profile falls back too.
#[tokio::test]
async fn edge_profile_falls_back_to_on_demand_under_ulimit_v_and_runs_components() {
    let inventory =
        runs_components_within_the_limit("footprint-edge", &["--profile", "edge"]).await;
    assert_eq!(
        inventory.heartbeat_interval_ms, 15_000,
        "the edge profile's heartbeat"
    );
}
