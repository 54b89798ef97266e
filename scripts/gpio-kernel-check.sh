#!/usr/bin/env bash
# The GPIO character-device backend against a real kernel's gpio-sim: builds the test in
# gpio/tests/kernel.rs as a static executable and runs it inside the qemu VM of
# scripts/gpio-kernel-test.sh (which builds and caches the kernel under target/gpio-kernel
# on its first run). Exits with the test's status.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

target="$(rustc -vV | sed -n 's/^host: //p')"
echo "==> building the GPIO kernel test (static, $target)" >&2
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
if ! RUSTFLAGS='-C target-feature=+crt-static' cargo test -p trellis-gpio --test kernel \
    --no-run --locked --target "$target" --message-format=json >"$log.json" 2>"$log"; then
    tail -n 30 "$log" >&2
    rm -f "$log.json"
    echo "gpio-kernel-check: building the test failed" >&2
    exit 1
fi
bin="$(python3 -c '
import json, sys
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "kernel":
        print(m["executable"])
' "$log.json" | tail -n 1)"
rm -f "$log.json"
if [ -z "$bin" ]; then
    echo "gpio-kernel-check: cargo built no kernel test executable" >&2
    exit 1
fi
exec "$root/scripts/gpio-kernel-test.sh" "$bin" --ignored --test-threads=1 --nocapture
