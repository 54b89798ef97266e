#!/usr/bin/env bash
# Installs what Trellis needs on a Debian bookworm machine and builds the example
# components. Safe to run again: it only does what is missing.
#
#   services used by the tests:  nats-server (JetStream), redis-server, mosquitto (MQTT)
#   load generator for benches:  wrk
#   component toolchain:         see examples/build.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=lib/apt.sh
source "$root/scripts/lib/apt.sh"

apt_install nats-server redis-server mosquitto mosquitto-clients openssl wrk ca-certificates

if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo is not installed: install Rust with rustup (https://rustup.rs)" >&2
    exit 1
fi

"$root/examples/build.sh"
