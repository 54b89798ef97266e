//! Where the binaries, components and programs the tests use are.

use std::path::PathBuf;

/// The workspace's target directory (where the binaries and components are).
pub fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    // Test executables live in target/<profile>/deps/.
    let exe = std::env::current_exe().expect("test executable path");
    exe.ancestors()
        .find(|p| p.file_name().is_some_and(|n| n == "target"))
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// A binary of this workspace, built by `cargo build --workspace` in the same profile, or the
/// one in `$TRELLIS_TEST_BIN_DIR` when set (to run the tests against another build, e.g. to
/// see a regression test fail on the build before its fix).
pub fn bin(name: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os("TRELLIS_TEST_BIN_DIR") {
        let path = PathBuf::from(dir).join(name);
        assert!(path.is_file(), "{} is missing", path.display());
        return path;
    }
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(PathBuf::from)
        .expect("test executable in target/<profile>/deps");
    let path = profile_dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: build the workspace first (cargo build --workspace{})",
        path.display(),
        if profile_dir.ends_with("release") {
            " --release"
        } else {
            ""
        }
    );
    path
}

/// A component built by `examples/build.sh`.
pub fn component(name: &str) -> PathBuf {
    let path = target_dir().join("components").join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing: run examples/build.sh first",
        path.display()
    );
    path
}

/// `file://` reference to a component.
pub fn component_ref(name: &str) -> String {
    format!("file://{}", component(name).display())
}

/// A compiled-component cache shared by all tests, so each component compiles once per run.
pub fn shared_cache_dir() -> PathBuf {
    let dir = target_dir().join("test-cache");
    std::fs::create_dir_all(&dir).expect("creating the shared test cache");
    dir
}

/// A program the tests need, or a panic saying how to install it.
pub fn require_program(name: &str, install: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/local/sbin".into()])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} is not installed; install it with: {install}"))
}

/// Prints the end of a process's log, for a test that failed.
pub fn print_log_tail(what: &str, log: &str) {
    let lines: Vec<&str> = log.lines().collect();
    let start = lines.len().saturating_sub(400);
    eprintln!(
        "---- last {} lines of the {what} log ----",
        lines.len() - start
    );
    for line in &lines[start..] {
        eprintln!("{line}");
    }
}

/// A request to run `replicas` of the example component `component` under the id `id`.
pub fn scale_request(
    id: &str,
    component: &str,
    replicas: u32,
) -> trellis_lattice::control::ScaleComponent {
    trellis_lattice::control::ScaleComponent {
        component_id: id.to_string(),
        image: component_ref(component),
        replicas,
        config: Vec::new(),
        max_memory_bytes: None,
        timeout_ms: None,
        annotations: Default::default(),
        ..Default::default()
    }
}
