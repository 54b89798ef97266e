#!/usr/bin/env bash
# Starts Trellis on this machine with a demo: a NATS server (or the one at $NATS_URL), a
# host and the deployment manager, in the background; then starts the greeter component
# and calls it. `target/release/trellis down` stops everything.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

"$root/scripts/setup.sh"
echo "==> cargo build --release" >&2
cargo build --release --locked --bins

trellis="$root/target/release/trellis"
"$trellis" down >/dev/null 2>&1 || true
"$trellis" up --detach
"$trellis" component start "$root/target/components/greeter.wasm" --id greeter
"$trellis" call greeter greet '"Trellis"'
"$trellis" get hosts
cat <<MSG

Trellis is running in the background. Try:
  $trellis get inventory
  $trellis call greeter greet '"you"'
  $trellis spy
Stop it with: $trellis down
MSG
