//! Records the target triple the host is built for: a host with `--portable-code` compiles
//! for exactly that triple, as `--precompile` does for it elsewhere.

fn main() {
    let target = std::env::var("TARGET").unwrap_or_default();
    println!("cargo:rustc-env=TRELLIS_HOST_TARGET={target}");
    println!("cargo:rerun-if-changed=build.rs");
}
