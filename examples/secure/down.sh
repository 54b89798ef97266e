#!/usr/bin/env bash
# Stops what examples/secure/up.sh started (the processes in DIR/pids), keeping the keys.
#
# Usage: examples/secure/down.sh [DIR]   (DIR: ${TRELLIS_SECURE_DIR:-/tmp/trellis-secure})
set -euo pipefail

DIR="${1:-${TRELLIS_SECURE_DIR:-/tmp/trellis-secure}}"
[ -f "$DIR/pids" ] || exit 0
# The Trellis processes first (newest first), the NATS server last.
tac "$DIR/pids" | while read -r pid; do
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
done
rm -f "$DIR/pids"
echo "down.sh: stopped" >&2
