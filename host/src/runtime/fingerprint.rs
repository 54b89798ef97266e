//! Which compiled artifacts an engine can load, as 32 hex digits: the name of its disk cache
//! directory and of its entries in the lattice's shared store.
//!
//! A host that compiles uses wasmtime's own compatibility hash (its version, the target and
//! CPU features, compiler settings and tunables). A host built without a compiler has no such
//! hash, so it is named by the settings it was started with instead — the ones that decide
//! what it can load — and a server precompiling for it (`--precompile`) publishes under both
//! names. Either way wasmtime checks every artifact against the engine before loading it.

use sha2::{Digest as _, Sha256};

use super::engine::AllocatorKind;

/// Feeds what wasmtime hashes into sha256, so the fingerprint is the same in every process
/// (std's hasher promises nothing across builds).
#[cfg(feature = "compiler")]
struct Sha256Hasher(Sha256);

#[cfg(feature = "compiler")]
impl std::hash::Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        0
    }
}

/// The compiling engine's fingerprint, from wasmtime's compatibility hash.
#[cfg(feature = "compiler")]
pub fn of_engine(engine: &wasmtime::Engine) -> String {
    use std::hash::Hash as _;
    let mut hasher = Sha256Hasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hex::encode(&hasher.0.finalize()[..16])
}

/// What a host that cannot compile loads: artifacts for `target` from this version of
/// Trellis and of wasmtime, for an engine with `allocator` (the on-demand fallback reserves
/// memory differently, which changes the code) and copy-on-write images or not.
pub fn for_loading(target: &str, allocator: AllocatorKind, memory_cow: bool) -> String {
    let mut hasher = Sha256::new();
    hasher.update(
        format!(
            "trellis-load/1\n{}\n{}\n{target}\n{allocator}\n{memory_cow}",
            env!("CARGO_PKG_VERSION"),
            env!("TRELLIS_WASMTIME_VERSION"),
        )
        .as_bytes(),
    );
    hex::encode(&hasher.finalize()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loading_fingerprints_differ_by_every_setting_they_name() {
        let base = for_loading("aarch64-unknown-linux-gnu", AllocatorKind::Pooling, true);
        assert_eq!(base.len(), 32);
        assert!(base.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(
            base,
            for_loading("aarch64-unknown-linux-gnu", AllocatorKind::Pooling, true)
        );
        for other in [
            for_loading("x86_64-unknown-linux-gnu", AllocatorKind::Pooling, true),
            for_loading("aarch64-unknown-linux-gnu", AllocatorKind::OnDemand, true),
            for_loading("aarch64-unknown-linux-gnu", AllocatorKind::Pooling, false),
        ] {
            assert_ne!(base, other);
        }
    }
}
