//! Records the target triple the host is built for (a host with `--portable-code` compiles
//! for exactly that triple, as `--precompile` does for it elsewhere) and the wasmtime version
//! it links (part of the load fingerprint of a host built without a compiler).

fn main() {
    let target = std::env::var("TARGET").unwrap_or_default();
    println!("cargo:rustc-env=TRELLIS_HOST_TARGET={target}");
    println!("cargo:rustc-env=TRELLIS_WASMTIME_VERSION={}", wasmtime_version());
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=../Cargo.lock");
}

/// wasmtime's version from the workspace's lock file; "unlocked" outside the workspace.
fn wasmtime_version() -> String {
    let lock = std::fs::read_to_string("../Cargo.lock").unwrap_or_default();
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line == "name = \"wasmtime\"" {
            if let Some(version) = lines
                .next()
                .and_then(|l| l.strip_prefix("version = \""))
                .and_then(|v| v.strip_suffix('"'))
            {
                return version.to_string();
            }
        }
    }
    "unlocked".to_string()
}
