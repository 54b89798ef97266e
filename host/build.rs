//! Records the target triple the host is built for (a host with `--portable-code` compiles
//! for exactly that triple, as `--precompile` does for it elsewhere) and the wasmtime version
//! it links (part of the load fingerprint of a host built without a compiler); packs
//! relocations when asked to.

fn main() {
    let target = std::env::var("TARGET").unwrap_or_default();
    println!("cargo:rustc-env=TRELLIS_HOST_TARGET={target}");
    println!("cargo:rustc-env=TRELLIS_WASMTIME_VERSION={}", wasmtime_version());
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=../Cargo.lock");
    pack_relocations();
}

/// `TRELLIS_PACK_RELOCS=1` (`scripts/board-build.sh` sets it): relative relocations packed
/// (DT_RELR) instead of a 24-byte entry each. The loader then reads a few KiB instead of
/// ~1 MB at every start, and that file data no longer stays resident. Needs GNU ld 2.38 or
/// lld to link and glibc 2.36 (Debian bookworm, Ubuntu 22.10) on the machine that runs it,
/// so it is asked for, not the default.
fn pack_relocations() {
    println!("cargo:rerun-if-env-changed=TRELLIS_PACK_RELOCS");
    let asked = std::env::var("TRELLIS_PACK_RELOCS").is_ok_and(|v| v == "1");
    let linux_gnu = std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|v| v == "linux")
        && std::env::var("CARGO_CFG_TARGET_ENV").is_ok_and(|v| v == "gnu");
    if asked && linux_gnu {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
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
