#!/usr/bin/env bash
# A long cut of an edge's uplink with its outbox over budget (issue: offline tolerance):
# readings every ~100 ms for TRELLIS_LONG_CUT (default 10m) into an outbox of 500, then the
# uplink returns; prints how many arrived and how many were dropped, and checks that the
# newest arrived in order and the counts add up. Not part of scripts/test.sh.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
cargo build --workspace --bins --locked
cargo nextest run -p trellis-tests --test edge_outbox --locked --run-ignored only \
    --no-capture a_long_cut_over_budget 2>&1 | grep -E "long cut:|PASS|FAIL|panicked|left|right"
