#!/usr/bin/env bash
# The host's footprint for boards: the stripped size of the release `trellis-host`, and its
# resident memory (VmRSS, and the peak VmHWM, from /proc/PID/status) 5 s after start, with
# no components and with the `sensor-reader` example (on a simulated GPIO chip, after a few
# readings), under `--profile default` and `--profile edge`; and, when it has been built, a
# board's build (`scripts/board-build.sh`: no compiler, size-optimised, packed relocations)
# under `--profile edge`, running what the release host precompiled
# for it through the lattice.
#
# Every memory figure is the median of RUNS runs (5 by default), each a fresh host; the
# profiles take turns within each round so both see the same noise. The script starts its
# own nats-server on a free loopback port (never 4222) and stops everything it started.
#
#   cargo build --release -p trellis-host    # and the CLI: cargo build -p trellis-cli (or --release)
#   examples/build.sh                        # target/components/sensor-reader.wasm
#   scripts/footprint.sh                     # RUNS=9 scripts/footprint.sh for more runs
#
# Targets (the board issue): binary <= 20 MB stripped, idle RSS <= 12 MB, <= 16 MB with the
# sensors component. The script prints each figure against its target.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
runs="${RUNS:-5}"
settle="${SETTLE_SECONDS:-5}"
host_bin="${TRELLIS_HOST_BIN:-$root/target/release/trellis-host}"
board_bin="${TRELLIS_BOARD_BIN:-$root/target/edge/trellis-host}"
cli_bin="${TRELLIS_CLI_BIN:-}"
if [ -z "$cli_bin" ]; then
    for c in "$root/target/release/trellis" "$root/target/debug/trellis"; do
        [ -x "$c" ] && cli_bin="$c" && break
    done
fi
component="$root/target/components/sensor-reader.wasm"
[ -x "$host_bin" ] || { echo "missing $host_bin: cargo build --release -p trellis-host" >&2; exit 1; }
[ -n "$cli_bin" ] || { echo "missing the trellis CLI: cargo build -p trellis-cli" >&2; exit 1; }
[ -f "$component" ] || { echo "missing $component: examples/build.sh" >&2; exit 1; }
command -v nats-server >/dev/null || { echo "missing nats-server: apt-get install nats-server" >&2; exit 1; }
command -v strip >/dev/null || { echo "missing strip: apt-get install binutils" >&2; exit 1; }

work="$(mktemp -d)"
pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

free_port() {
    python3 -c '
import socket
while True:
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close()
    if p != 4222: print(p); break'
}

port="$(free_port)"
nats-server -a 127.0.0.1 -p "$port" -js -sd "$work/js" >"$work/nats.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
    (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
done
export NATS_URL="nats://127.0.0.1:$port"
cli() { "$cli_bin" "$@" >/dev/null; }

# KiB of a field of /proc/PID/status.
status_kib() { awk -v f="$1:" '$1 == f { print $2 }' "/proc/$2/status"; }

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }
minmax() { sort -n | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.1f–%.1f", lo / 1024, hi / 1024 }'; }

# Starts host executable $1; prints its pid once it has said "host started".
start_host() {
    local bin="$1" name="$2" lattice="$3" log="$4"
    shift 4
    "$bin" --lattice "$lattice" --name "$name" --ephemeral --log info "$@" >"$log" 2>&1 &
    local pid=$!
    for _ in $(seq 300); do
        grep -q "host started" "$log" && { echo "$pid"; return 0; }
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    echo "the host did not start:" >&2
    cat "$log" >&2
    kill "$pid" 2>/dev/null || true
    return 1
}

stop_host() {
    kill -TERM "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# The workloads measured, and what each is called in the output.
workloads=(idle reader messaging cold)
describe() {
    case "$1" in
    idle) echo "no components" ;;
    reader) echo "sensor-reader, 5 readings (no link: each send fails)" ;;
    messaging) echo "sensor-reader linked to builtin messaging-nats, 5 readings sent" ;;
    cold) echo "sensor-reader, 5 readings, compiled cache empty (Cranelift ran)" ;;
    esac
}

# The hosts measured: the release executable under each profile, and the board's build.
variants=(default edge)
if [ -x "$board_bin" ]; then
    variants+=(board)
    lattice_public="$("$cli_bin" keys gen lattice --out "$work/lattice.nk")"
fi

# One measurement: a fresh host (variant $1, workload $2), VmRSS, VmHWM, RssAnon and
# RssFile in KiB after $settle seconds, appended to $work/<variant>-<workload>.<field>.
measure() {
    local profile="$1" workload="$2" round="$3"
    local lattice="fp-$profile-$workload-$round" name="fp-$profile-$workload-$round"
    local log="$work/$lattice.log" cache="$work/cache" extra=()
    local bin="$host_bin" flags=(--profile "$profile")
    [ "$workload" != idle ] && extra=(--gpio-sim sim0=8)
    [ "$workload" = cold ] && cache="$work/cold-cache-$profile-$round"
    if [ "$profile" = board ]; then
        # No compiler: nothing to measure cold; warm, it loads from its disk cache what the
        # warm-up took from the lattice.
        [ "$workload" = cold ] && return 0
        bin="$board_bin"
        flags=(--profile edge --lattice-public-key "$lattice_public")
        if [ "$round" = warmup ]; then
            "$host_bin" --lattice "$lattice" --ephemeral --log warn --profile edge \
                --lattice-key-file "$work/lattice.nk" --precompile "$component" >/dev/null
        fi
    fi
    local pid
    pid="$(start_host "$bin" "$name" "$lattice" "$log" --cache-dir "$cache" "${flags[@]}" "${extra[@]}")"
    pids+=("$pid")
    if [ "$workload" != idle ]; then
        cli config put --lattice "$lattice" reader-pins \
            pins=strobe:sim0:0,d0:sim0:1,d1:sim0:2,d2:sim0:3,d3:sim0:4
        cli component start --lattice "$lattice" --host "$name" --id reader \
            --config reader-pins "$component"
        if [ "$workload" = messaging ]; then
            cli provider start --lattice "$lattice" --host "$name" --id edge-messaging \
                builtin://messaging-nats
            cli link put --lattice "$lattice" reader edge-messaging trellis:messaging \
                --interface producer
        fi
        # A few readings, so an instance has run: value 5 on d0..d3, then strobe.
        cli gpio set --lattice "$lattice" "$name" sim0:1 1
        cli gpio set --lattice "$lattice" "$name" sim0:3 1
        local _
        for _ in 1 2 3 4 5; do
            cli gpio set --lattice "$lattice" "$name" sim0:0 1
            cli gpio set --lattice "$lattice" "$name" sim0:0 0
        done
    fi
    sleep "${SETTLE:-$settle}"
    local field
    for field in VmRSS VmHWM RssAnon RssFile; do
        status_kib "$field" "$pid" >>"$work/$profile-$workload.$field"
    done
    stop_host "$pid"
    if [ "$workload" != idle ] && ! grep -q "component loaded" "$log"; then
        echo "sensor-reader did not start:" >&2
        cat "$log" >&2
        exit 1
    fi
    if [ "$workload" = messaging ] && grep -q "edge handler failed" "$log"; then
        echo "a reading was not sent:" >&2
        cat "$log" >&2
        exit 1
    fi
    if [ "$round" = 1 ]; then
        sed -n 's/.*\(allocator=[a-z-]*\).*/\1/p' "$log" | head -1 >"$work/$profile.allocator"
    fi
}

echo "trellis-host: $host_bin"
stripped="$work/trellis-host.stripped"
cp "$host_bin" "$stripped"
strip "$stripped"
size_unstripped="$(stat -c %s "$host_bin")"
size_stripped="$(stat -c %s "$stripped")"
echo "==> warming the compiled-component cache" >&2
for profile in "${variants[@]}"; do
    SETTLE=0 measure "$profile" reader warmup
done
rm -f "$work"/*-reader.*
echo "==> measuring ($runs runs of each memory figure, ${settle}s after start)" >&2
for round in $(seq "$runs"); do
    for workload in "${workloads[@]}"; do
        for profile in "${variants[@]}"; do
            measure "$profile" "$workload" "$round"
        done
    done
    echo "    round $round of $runs done" >&2
done

verdict() { awk -v v="$1" -v t="$2" 'BEGIN { print (v <= t) ? "met" : "NOT met" }'; }
echo
echo "binary size (deterministic, 1 measurement):"
printf "  unstripped %.1f MB, stripped %.1f MB (%d bytes); target <= 20 MB: %s\n" \
    "$(awk -v b="$size_unstripped" 'BEGIN { print b / 1e6 }')" \
    "$(awk -v b="$size_stripped" 'BEGIN { print b / 1e6 }')" "$size_stripped" \
    "$(verdict "$size_stripped" 20000000)"
if [ -x "$board_bin" ]; then
    cp "$board_bin" "$work/board.stripped"
    strip "$work/board.stripped"
    board_stripped="$(stat -c %s "$work/board.stripped")"
    printf "  board's build (%s): stripped %.1f MB (%d bytes); target <= 20 MB: %s\n" \
        "$board_bin" "$(awk -v b="$board_stripped" 'BEGIN { print b / 1e6 }')" \
        "$board_stripped" "$(verdict "$board_stripped" 20000000)"
fi
echo
echo "resident memory, median of $runs runs (min–max), ${settle}s after start; RssFile is"
echo "the executable's and libraries' pages mapped (clean, shared, dropped under pressure),"
echo "RssAnon the process's own memory:"
for workload in "${workloads[@]}"; do
    # Targets in MB (10^6 bytes), the stricter reading.
    target_mb=16
    [ "$workload" = idle ] && target_mb=12
    target_kib="$(awk -v m="$target_mb" 'BEGIN { print m * 1e6 / 1024 }')"
    echo "  $(describe "$workload"):"
    for profile in "${variants[@]}"; do
        f="$work/$profile-$workload"
        [ -s "$f.VmRSS" ] || continue
        rss="$(median <"$f.VmRSS")"
        label="--profile $profile"
        [ "$profile" = board ] && label="board's build"
        printf "    %-17s VmRSS %s (%s)  VmHWM %s (%s)  RssAnon %s  RssFile %s  %s  target <= %d MB: %s\n" \
            "$label" "$(mib "$rss")" "$(minmax <"$f.VmRSS")" \
            "$(mib "$(median <"$f.VmHWM")")" "$(minmax <"$f.VmHWM")" \
            "$(mib "$(median <"$f.RssAnon")")" "$(mib "$(median <"$f.RssFile")")" \
            "$(cat "$work/$profile.allocator")" "$target_mb" "$(verdict "$rss" "$target_kib")"
    done
done
