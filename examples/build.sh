#!/usr/bin/env bash
# Builds every example component from source into target/components/<name>.wasm.
#
# Installs what it needs on a Debian bookworm machine: Debian's rustc-web with its library
# sources (std is rebuilt for wasm32-wasip2 with -Zbuild-std), the wasm linker, wasi-libc,
# and componentize-py for the Python example. Work already done is skipped: cargo rebuilds
# nothing unchanged, the Python component is rebuilt only when its inputs change.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
out="$root/target/components"
# shellcheck source=../scripts/lib/apt.sh
source "$root/scripts/lib/apt.sh"

apt_install rustc-web cargo-web rust-web-src rust-web-llvm lld-22 wasi-libc

# rustup's proxies in ~/.cargo/bin would shadow Debian's compiler, which is the one whose
# library sources are installed.
llvm_major="$(/usr/bin/rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')"
export PATH="/usr/lib/llvm-${llvm_major}/bin:$PATH"
export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="$root/target/wasm-guests"
mkdir -p "$out"

echo "==> building Rust components" >&2
(cd "$here" && /usr/bin/cargo build --release --quiet)
for name in greeter hello-http spin hog crash counter upper shout http-test settings traced relay button led sensor-reader sensor-aggregator sensor-store recurse chatter holder ouroboros omnivore sandbox; do
    built="$CARGO_TARGET_DIR/wasm32-wasip2/release/${name//-/_}.wasm"
    cmp -s "$built" "$out/$name.wasm" 2>/dev/null || cp "$built" "$out/$name.wasm"
done

# Python: componentize-py bundles the interpreter (one wheel from PyPI, no network at build).
componentize_py_version=0.25.1
if ! command -v componentize-py >/dev/null 2>&1 ||
    [ "$(componentize-py --version 2>/dev/null | awk '{print $2}')" != "$componentize_py_version" ]; then
    echo "==> pip install componentize-py==$componentize_py_version" >&2
    python3 -m pip install --quiet "componentize-py==$componentize_py_version" >&2
fi
py_stamp="$(cat "$here/greeter-py/app.py" "$here/greeter/wit/world.wit" | sha256sum | cut -c1-64)-$componentize_py_version"
if [ ! -f "$out/greeter-py.wasm" ] || [ "$(cat "$out/greeter-py.stamp" 2>/dev/null)" != "$py_stamp" ]; then
    echo "==> building greeter-py (componentize-py)" >&2
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    (cd "$here/greeter-py" && componentize-py -d ../greeter/wit -w greeter componentize app -o "$tmp/greeter-py.wasm" >/dev/null)
    mv "$tmp/greeter-py.wasm" "$out/greeter-py.wasm"
    echo "$py_stamp" > "$out/greeter-py.stamp"
fi

ls -l "$out"/*.wasm >&2
