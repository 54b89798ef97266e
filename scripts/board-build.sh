#!/usr/bin/env bash
# A board's trellis-host: no compiler (it loads what a server precompiled for it, see
# "Compiled once per lattice" in the README), the `edge` Cargo profile (optimised for size,
# fat LTO, one codegen unit, stripped) and packed relative relocations. Output:
# target/edge/trellis-host.
#
#   scripts/board-build.sh                 # for this machine
#   PACK_RELOCS=0 scripts/board-build.sh   # for a board whose glibc is older than 2.36
#
# For a 64-bit ARM board: PROFILE=edge BOARD=1 scripts/cross-aarch64.sh.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
TRELLIS_PACK_RELOCS="${PACK_RELOCS:-1}" cargo build --locked --profile edge -p trellis-host \
    --no-default-features --bin trellis-host
bin="${CARGO_TARGET_DIR:-$root/target}/edge/trellis-host"
echo "$bin: $(stat -c %s "$bin") bytes"
