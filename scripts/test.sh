#!/usr/bin/env bash
# The whole test suite, from a bare machine: installs what is missing, builds the example
# components and the workspace once, then runs every test in parallel against real
# nats-server and redis-server processes the tests start on free ports.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

"$root/scripts/setup.sh"

echo "==> structure (file length, import circles, subjects and replies built by hand)" >&2
python3 "$root/scripts/check-structure.py"

# Features differ, so this is a build of its own; it goes first because the workspace build
# below writes target/debug/trellis-host again.
echo "==> trellis-host without a compiler (a board's build), for tests/tests/artifacts_loader.rs" >&2
cargo clippy -p trellis-host --no-default-features --all-targets --locked -- -D warnings
cargo build -p trellis-host --no-default-features --bin trellis-host --locked
cp "${CARGO_TARGET_DIR:-target}/debug/trellis-host" "${CARGO_TARGET_DIR:-target}/debug/trellis-host-loader"

echo "==> cargo build (workspace, all targets)" >&2
cargo build --workspace --all-targets --locked

echo "==> cargo clippy (warnings are errors)" >&2
cargo clippy --workspace --all-targets --locked -- -D warnings

if cargo nextest --version >/dev/null 2>&1; then
    echo "==> cargo nextest run" >&2
    cargo nextest run --workspace --locked --no-fail-fast
else
    echo "==> cargo test (install cargo-nextest for parallel test processes)" >&2
    cargo test --workspace --locked --no-fail-fast
fi

echo "==> GPIO character-device backend against a real kernel's gpio-sim (qemu)" >&2
"$root/scripts/gpio-kernel-check.sh"
