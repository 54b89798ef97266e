#!/usr/bin/env bash
# Cuts and restores the edge's uplink of a lattice examples/edge/up.sh started. The edge
# leaf's only remote is a TCP forwarder (socat, EDGE_UPLINK_PORT -> the hub's leaf port):
#
#   cut.sh off [DIR]      stop the forwarder and its open connections: the edge leaf loses
#                         the hub (and keeps retrying its remote)
#   cut.sh on [DIR]       start the forwarder again: the edge leaf reconnects
#   cut.sh status [DIR]   whether the forwarder runs, and the leaf connections the hub lists
#
# The hub is not touched. DIR: ${TRELLIS_EDGE_DIR:-/tmp/trellis-edge}.
set -euo pipefail

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
die() {
    printf 'cut.sh: error: %s\n' "$*" >&2
    exit 1
}

action="${1:-}"
case "$action" in
    on | off | status) ;;
    -h | --help)
        usage
        exit 0
        ;;
    *)
        usage >&2
        exit 2
        ;;
esac
DIR="${2:-${TRELLIS_EDGE_DIR:-/tmp/trellis-edge}}"
[ -f "$DIR/run/ports.env" ] || die "$DIR/run/ports.env not found; is the lattice running (examples/edge/up.sh $DIR)?"
# shellcheck source=/dev/null
. "$DIR/run/ports.env"
pidfile="$DIR/run/uplink.pid"

alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }
uplink_pid() {
    local pid
    pid="$(cat "$pidfile" 2>/dev/null || true)"
    if alive "$pid" && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q socat; then
        echo "$pid"
    fi
}
hub_leaves() {
    curl -fsS --max-time 2 "http://127.0.0.1:$HUB_MON_PORT/leafz" 2>/dev/null |
        sed -n 's/^ *"leafnodes": *\([0-9]*\).*/\1/p'
}
# The port the edge leaf's hub connection goes to (the forwarder's, normally), if any.
edge_remote_port() {
    curl -fsS --max-time 2 "http://127.0.0.1:$EDGE_MON_PORT/leafz" 2>/dev/null |
        sed -n 's/^ *"port": *\([0-9]*\).*/\1/p' | head -n 1
}
edge_connected() { [ -n "$(edge_remote_port)" ]; }

case "$action" in
    status)
        pid="$(uplink_pid)"
        if [ -n "$pid" ]; then
            echo "uplink: on (socat pid $pid, 127.0.0.1:$EDGE_UPLINK_PORT -> 127.0.0.1:$HUB_LEAF_PORT)"
        else
            echo "uplink: off"
        fi
        port="$(edge_remote_port)"
        if [ -n "$port" ]; then
            echo "edge leaf: connected to the hub through 127.0.0.1:$port"
        else
            echo "edge leaf: not connected to the hub"
        fi
        echo "hub /leafz: $(hub_leaves) leaf connection(s) (http://127.0.0.1:$HUB_MON_PORT/leafz)"
        ;;
    off)
        pid="$(uplink_pid)"
        if [ -z "$pid" ]; then
            rm -f "$pidfile"
            echo "cut.sh: the uplink is already off"
            exit 0
        fi
        # The listener and the children it forked for open connections share a session
        # (up.sh and `cut.sh on` start socat with setsid): end them all.
        if [ "$(ps -o pgid= -p "$pid" | tr -d ' ')" = "$pid" ]; then
            kill -TERM -- "-$pid" 2>/dev/null || true
        else
            kill -TERM "$pid" 2>/dev/null || true
        fi
        for ((i = 0; i < 20; i++)); do
            pgrep -g "$pid" >/dev/null 2>&1 || break
            sleep 0.25
        done
        if pgrep -g "$pid" >/dev/null 2>&1; then kill -KILL -- "-$pid" 2>/dev/null || true; fi
        rm -f "$pidfile"
        for ((i = 0; i < 20; i++)); do
            edge_connected || break
            sleep 0.25
        done
        sleep 2 # past the leaf's first reconnect attempts
        port="$(edge_remote_port)"
        if [ -n "$port" ]; then
            die "the uplink is off but the edge leaf is connected to the hub through 127.0.0.1:$port (see $DIR/logs/edge.log)"
        fi
        echo "cut.sh: uplink off; the edge leaf is not connected; hub /leafz lists $(hub_leaves) leaf connection(s)"
        ;;
    on)
        if [ -n "$(uplink_pid)" ]; then
            echo "cut.sh: the uplink is already on (pid $(uplink_pid))"
            exit 0
        fi
        if (exec 3<>"/dev/tcp/127.0.0.1/$EDGE_UPLINK_PORT") 2>/dev/null; then
            die "127.0.0.1:$EDGE_UPLINK_PORT is taken by another process"
        fi
        setsid "$SOCAT" "TCP-LISTEN:$EDGE_UPLINK_PORT,bind=127.0.0.1,fork,reuseaddr,nodelay" \
            "TCP:127.0.0.1:$HUB_LEAF_PORT,nodelay" >>"$DIR/logs/uplink.log" 2>&1 </dev/null &
        echo $! >"$pidfile"
        # The edge leaf retries its remote about once a second.
        for ((i = 0; i < 60; i++)); do
            edge_connected && break
            sleep 0.25
        done
        if edge_connected; then
            echo "cut.sh: uplink on; the edge leaf is connected through 127.0.0.1:$(edge_remote_port); hub /leafz lists $(hub_leaves) leaf connection(s)"
        else
            echo "cut.sh: uplink on (pid $(cat "$pidfile")); the edge leaf has not reconnected yet (see $DIR/logs/edge.log)"
        fi
        ;;
esac
