#!/usr/bin/env bash
# Builds `trellis-host` for aarch64-unknown-linux-gnu (64-bit ARM boards: Raspberry Pi 3/4/5,
# Jetson, i.MX8, ...) on a Debian bookworm x86_64 machine without rustup targets.
#
# rustup cannot download the aarch64 standard library here, so the build uses Debian's own
# compiler (`rustc-web`, with its library sources from `rust-web-src`) and rebuilds std for
# the target with `-Zbuild-std` (RUSTC_BOOTSTRAP=1), as examples/build.sh does for
# wasm32-wasip2. Debian's cross gcc links and compiles the C parts (ring). The result is
# checked with `file` and run once (`--version`) under qemu-user.
#
# Time on the 2-core development machine (shared with other builds, load ~4.5): about an hour
# from nothing (47 min for std and every dependency, 15 min for the workspace's crates),
# 5-15 min when only workspace crates changed (5 for the host and one provider). The output
# directory (target/cross-aarch64) is separate from target/, so the two compilers' artifacts
# never mix.
#
#   scripts/cross-aarch64.sh              # release build into target/cross-aarch64/
#   PROFILE=dev scripts/cross-aarch64.sh  # a debug build
#   PROFILE=edge BOARD=1 scripts/cross-aarch64.sh   # a board's build: no compiler, size-optimised
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=lib/apt.sh
source "$root/scripts/lib/apt.sh"

target=aarch64-unknown-linux-gnu
profile="${PROFILE:-release}"
# BOARD=1: without the compiler feature (the board loads what a server precompiled for it)
# and with packed relocations (glibc 2.36 on the board; PACK_RELOCS=0 for an older one), as
# scripts/board-build.sh builds for this machine.
features=()
if [ "${BOARD:-0}" = 1 ]; then
    features=(--no-default-features)
    export TRELLIS_PACK_RELOCS="${PACK_RELOCS:-1}"
fi

apt_install rustc-web cargo-web rust-web-src rust-web-llvm \
    gcc-aarch64-linux-gnu libc6-dev-arm64-cross file qemu-user

# rustup's proxies in ~/.cargo/bin would shadow Debian's compiler, whose library sources are
# the ones installed; Debian's cargo matches it.
export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
# Its own directory: another compiler, and the shared target/ stays untouched.
export CARGO_TARGET_DIR="$root/target/cross-aarch64"

echo "==> $(/usr/bin/rustc --version), building trellis-host for $target ($profile)" >&2
start=$(date +%s)
(cd "$root" && /usr/bin/cargo build --locked -Zbuild-std --target "$target" \
    --profile "$profile" -p trellis-host --bin trellis-host "${features[@]}")
elapsed=$(($(date +%s) - start))

dir="$profile"
[ "$profile" = dev ] && dir=debug
bin="$CARGO_TARGET_DIR/$target/$dir/trellis-host"
file "$bin"
file "$bin" | grep -q "ARM aarch64" || { echo "not an aarch64 executable: $bin" >&2; exit 1; }
echo "built in ${elapsed}s: $bin ($(stat -c %s "$bin") bytes)"
stripped="$(mktemp)"
trap 'rm -f "$stripped"' EXIT
aarch64-linux-gnu-strip -o "$stripped" "$bin"
echo "stripped: $(stat -c %s "$stripped") bytes"
qemu-aarch64 -L /usr/aarch64-linux-gnu "$bin" --version
