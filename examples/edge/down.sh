#!/usr/bin/env bash
# Stops what examples/edge/up.sh started in DIR, in reverse order: SIGTERM, then SIGKILL
# after 10 s. Logs stay in DIR; --clean removes DIR as well.
#
# Usage: examples/edge/down.sh [--clean] [DIR]     (DIR: ${TRELLIS_EDGE_DIR:-/tmp/trellis-edge})
set -euo pipefail

clean=0
DIR=""
for arg in "$@"; do
    case "$arg" in
        --clean) clean=1 ;;
        -h | --help)
            awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
            exit 0
            ;;
        -*)
            echo "down.sh: unknown option $arg" >&2
            exit 2
            ;;
        *) DIR="$arg" ;;
    esac
done
DIR="${DIR:-${TRELLIS_EDGE_DIR:-/tmp/trellis-edge}}"

log() { printf 'down.sh: %s\n' "$*" >&2; }

if [ ! -d "$DIR" ]; then
    log "$DIR does not exist; nothing to stop"
    exit 0
fi
if [ ! -d "$DIR/run" ]; then
    log "$DIR/run does not exist; nothing to stop"
else
    # What each pid file's process must be (a pid may have been reused since).
    expect() {
        case "$1" in
            host-*) echo trellis-host ;;
            deploy) echo trellis-deploy ;;
            mosquitto) echo mosquitto ;;
            uplink) echo socat ;;
            *) echo nats-server ;;
        esac
    }

    # Alive: exists and is not a zombie waiting for its parent to reap it.
    alive() {
        local stat
        stat="$(ps -o stat= -p "$1" 2>/dev/null || true)"
        [ -n "$stat" ] && [ "${stat#Z}" = "$stat" ]
    }
    # The process group of PID, when PID leads it (up.sh starts each piece with setsid).
    own_group() { [ "$(ps -o pgid= -p "$1" 2>/dev/null | tr -d ' ')" = "$1" ]; }
    group_left() { pgrep -g "$1" >/dev/null 2>&1; }

    stop() { # NAME
        local name="$1" file="$DIR/run/$1.pid" pid i
        [ -e "$file" ] || return 0
        pid="$(cat "$file" 2>/dev/null || true)"
        case "$pid" in
            '' | *[!0-9]*)
                rm -f "$file"
                return 0
                ;;
        esac
        if ! alive "$pid"; then
            # The leader is gone; stragglers of its group (e.g. socat's forked children)
            # may not be.
            if group_left "$pid"; then kill -KILL -- "-$pid" 2>/dev/null || true; fi
            rm -f "$file"
            return 0
        fi
        if ! tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$(expect "$name")"; then
            log "$name: pid $pid is no longer $(expect "$name"); leaving it alone"
            rm -f "$file"
            return 0
        fi
        local group=0
        if own_group "$pid"; then group=1; fi
        log "stopping $name (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 40; i++)); do
            alive "$pid" || break
            sleep 0.25
        done
        if alive "$pid"; then
            log "$name (pid $pid) still running after 10 s; SIGKILL"
            if [ "$group" = 1 ]; then
                kill -KILL -- "-$pid" 2>/dev/null || true
            else
                kill -KILL "$pid" 2>/dev/null || true
            fi
            sleep 0.5
        fi
        # Whatever it left in its session (supervised providers, socat's connections).
        if [ "$group" = 1 ] && group_left "$pid"; then
            kill -TERM -- "-$pid" 2>/dev/null || true
            sleep 1
            if group_left "$pid"; then kill -KILL -- "-$pid" 2>/dev/null || true; fi
        fi
        rm -f "$file"
    }

    for name in host-edge host-gateway host-cloud deploy mosquitto edge gateway uplink hub; do
        stop "$name"
    done
    for f in "$DIR"/run/*.pid; do # anything else up.sh or cut.sh may have started
        if [ -e "$f" ]; then stop "$(basename "$f" .pid)"; fi
    done
    log "stopped; logs are in $DIR/logs"
fi

if [ "$clean" = 1 ]; then
    case "$DIR" in
        / | "$HOME" | /tmp | /usr | /etc | /var) log "refusing to remove $DIR" && exit 1 ;;
    esac
    rm -rf -- "$DIR"
    log "removed $DIR"
fi
