#!/usr/bin/env bash
# Starts a three-tier Trellis lattice on this machine, on loopback ports, over NATS leaf nodes:
#
#   hub      nats-server (JetStream domain `hub`, the lattice's state), trellis-deploy,
#            trellis-host cloud-1 (tier=cloud)
#   gateway  nats-server leaf of the hub (JetStream domain `gateway`),
#            trellis-host gateway-1 (tier=gateway)
#   edge     nats-server leaf of the hub through a TCP forwarder that `cut.sh` stops and
#            starts (JetStream domain `edge`), trellis-host edge-1 (tier=edge, --gpio-sim
#            sim0=8), mosquitto
#
# Usage: examples/edge/up.sh [DIR]     (DIR: ${TRELLIS_EDGE_DIR:-/tmp/trellis-edge})
# Configs, logs, pid files and state go under DIR; examples/edge/down.sh DIR stops it all.
# Ports: HUB_PORT, GATEWAY_PORT, EDGE_PORT (NATS clients), HUB_LEAF_PORT (the hub's leaf
# listener), EDGE_UPLINK_PORT (the forwarder), HUB_MON_PORT, GATEWAY_MON_PORT, EDGE_MON_PORT
# (NATS monitoring), MQTT_PORT (mosquitto), HTTP_PORT (where the sensors app serves
# /sensors, printed only: by default the port examples/apps/sensors.yaml names, else 28080).
# Binaries: $TRELLIS_BIN, else the repo's target/release, then target/debug, then PATH.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
DIR="${1:-${TRELLIS_EDGE_DIR:-/tmp/trellis-edge}}"
case "$DIR" in
    -h | --help)
        awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
        exit 0
        ;;
esac
case "$DIR" in
    /*) ;;
    *) DIR="$PWD/$DIR" ;;
esac

HUB_PORT="${HUB_PORT:-24222}"
GATEWAY_PORT="${GATEWAY_PORT:-24223}"
EDGE_PORT="${EDGE_PORT:-24224}"
HUB_LEAF_PORT="${HUB_LEAF_PORT:-27422}"
EDGE_UPLINK_PORT="${EDGE_UPLINK_PORT:-27423}"
HUB_MON_PORT="${HUB_MON_PORT:-28222}"
GATEWAY_MON_PORT="${GATEWAY_MON_PORT:-28223}"
EDGE_MON_PORT="${EDGE_MON_PORT:-28224}"
MQTT_PORT="${MQTT_PORT:-21883}"
# The sensors app's HTTP server is started by the app, not here: its port is the one its
# manifest names (config sensors-http-address), printed in the next steps.
manifest_http_port() {
    sed -n 's/^ *address: *[^ ]*:\([0-9][0-9]*\) *$/\1/p' "$repo/examples/apps/sensors.yaml" \
        2>/dev/null | head -n 1
}
HTTP_PORT="${HTTP_PORT:-$(manifest_http_port)}"
HTTP_PORT="${HTTP_PORT:-28080}"
JS_DOMAIN=hub

log() { printf 'up.sh: %s\n' "$*" >&2; }
die() {
    printf 'up.sh: error: %s\n' "$*" >&2
    exit 1
}

# ---- refuse to start twice -------------------------------------------------------------

alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

if [ -d "$DIR/run" ]; then
    running=()
    for f in "$DIR"/run/*.pid; do
        [ -e "$f" ] || continue
        pid="$(cat "$f" 2>/dev/null || true)"
        if alive "$pid"; then
            running+=("$(basename "$f" .pid)=$pid")
        else
            rm -f "$f"
        fi
    done
    if [ "${#running[@]}" -gt 0 ]; then
        die "already running in $DIR (${running[*]}); stop it first with: $here/down.sh $DIR"
    fi
fi

# ---- binaries ---------------------------------------------------------------------------

find_bin() {
    local name="$1" dir
    if [ -n "${TRELLIS_BIN:-}" ]; then
        [ -x "$TRELLIS_BIN/$name" ] || die "TRELLIS_BIN=$TRELLIS_BIN has no executable $name"
        echo "$TRELLIS_BIN/$name"
        return
    fi
    for dir in "$repo/target/release" "$repo/target/debug"; do
        if [ -x "$dir/$name" ]; then
            echo "$dir/$name"
            return
        fi
    done
    command -v "$name" || die "$name not found (set TRELLIS_BIN, or build: cargo build)"
}

TRELLIS_HOST="$(find_bin trellis-host)"
TRELLIS_DEPLOY="$(find_bin trellis-deploy)"
TRELLIS="$(find_bin trellis)"
NATS_SERVER="$(command -v nats-server)" || die "nats-server not found (apt-get install nats-server)"
MOSQUITTO="$(command -v mosquitto || true)"
[ -n "$MOSQUITTO" ] || [ ! -x /usr/sbin/mosquitto ] || MOSQUITTO=/usr/sbin/mosquitto
[ -n "$MOSQUITTO" ] || die "mosquitto not found (apt-get install mosquitto)"
if ! command -v socat >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        log "installing socat (the edge's uplink forwarder)"
        mkdir -p "$DIR"
        DEBIAN_FRONTEND=noninteractive apt-get install -y socat >"$DIR/apt-socat.log" 2>&1 ||
            die "apt-get install -y socat failed; see $DIR/apt-socat.log"
    else
        die "socat not found; install it (apt-get install socat) — the edge's uplink runs through it"
    fi
fi
SOCAT="$(command -v socat)"
command -v curl >/dev/null || die "curl not found (used to read the hub's /leafz)"

# ---- ports ------------------------------------------------------------------------------

port_busy() {
    local port="$1"
    if command -v ss >/dev/null; then
        [ -n "$(ss -Hltn "sport = :$port" 2>/dev/null)" ]
    else
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null
    fi
}

busy=()
for var in HUB_PORT GATEWAY_PORT EDGE_PORT HUB_LEAF_PORT EDGE_UPLINK_PORT HUB_MON_PORT \
    GATEWAY_MON_PORT EDGE_MON_PORT MQTT_PORT; do
    port="${!var}"
    case "$port" in
        '' | *[!0-9]*) die "$var=$port is not a port number" ;;
    esac
    if port_busy "$port"; then busy+=("$var=$port"); fi
done
if port_busy "$HTTP_PORT"; then
    log "note: port $HTTP_PORT, where the sensors app would serve /sensors, is already in use"
fi
if [ "${#busy[@]}" -gt 0 ]; then
    die "port(s) already in use on this machine: ${busy[*]}; free them or choose others, e.g. HUB_PORT=34222 $0 $DIR"
fi
dups="$(printf '%s\n' "$HUB_PORT" "$GATEWAY_PORT" "$EDGE_PORT" "$HUB_LEAF_PORT" "$EDGE_UPLINK_PORT" \
    "$HUB_MON_PORT" "$GATEWAY_MON_PORT" "$EDGE_MON_PORT" "$MQTT_PORT" | sort | uniq -d)"
[ -z "$dups" ] || die "the same port is given twice: $(echo "$dups" | tr '\n' ' ')"

# ---- layout -----------------------------------------------------------------------------

mkdir -p "$DIR/conf" "$DIR/logs" "$DIR/run" "$DIR/data" \
    "$DIR/state/cloud" "$DIR/state/gateway" "$DIR/state/edge"

# What cut.sh and down.sh need to know about this run.
cat >"$DIR/run/ports.env" <<EOF
HUB_PORT=$HUB_PORT
GATEWAY_PORT=$GATEWAY_PORT
EDGE_PORT=$EDGE_PORT
HUB_LEAF_PORT=$HUB_LEAF_PORT
EDGE_UPLINK_PORT=$EDGE_UPLINK_PORT
HUB_MON_PORT=$HUB_MON_PORT
GATEWAY_MON_PORT=$GATEWAY_MON_PORT
EDGE_MON_PORT=$EDGE_MON_PORT
MQTT_PORT=$MQTT_PORT
HTTP_PORT=$HTTP_PORT
SOCAT=$SOCAT
TRELLIS=$TRELLIS
EOF

# What the user sources to talk to the lattice through the hub.
cat >"$DIR/env" <<EOF
export NATS_URL=nats://127.0.0.1:$HUB_PORT TRELLIS_JS_DOMAIN=$JS_DOMAIN
export PATH="$(dirname "$TRELLIS"):\$PATH"
EOF

cat >"$DIR/conf/hub.conf" <<EOF
# The hub (cloud): holds the lattice's state in JetStream domain "hub".
server_name: hub
listen: 127.0.0.1:$HUB_PORT
http: 127.0.0.1:$HUB_MON_PORT
jetstream {
  domain: hub
  store_dir: "$DIR/data/hub"
  max_memory_store: 256MB
  max_file_store: 2GB
}
leafnodes {
  listen: 127.0.0.1:$HUB_LEAF_PORT
  # Leaves must reconnect only through their configured remote (the edge's goes through
  # the forwarder cut.sh controls). no_advertise keeps this server out of what cluster
  # peers gossip to leaves, but nats-server still puts its own leaf address in the INFO it
  # sends every leaf (leafnode_urls), and a leaf adds that address to its reconnect list:
  # the edge would reconnect around the forwarder. So the address advertised is one where
  # nothing listens (127.0.0.2: loopback, but the listener is bound to 127.0.0.1): a leaf
  # trying it is refused at once and goes on to its configured remote.
  no_advertise: true
  advertise: "127.0.0.2:$HUB_LEAF_PORT"
}
EOF

leaf_conf() { # NAME CLIENT_PORT MON_PORT REMOTE_PORT
    cat <<EOF
# Leaf node "$1": its own JetStream (domain "$1") for local buffering; the lattice's
# state stays in the hub's domain, reached across the leaf connection.
server_name: $1
listen: 127.0.0.1:$2
http: 127.0.0.1:$3
jetstream {
  domain: $1
  store_dir: "$DIR/data/$1"
  max_memory_store: 128MB
  max_file_store: 1GB
}
leafnodes {
  remotes: [ { url: "nats-leaf://127.0.0.1:$4" } ]
}
EOF
}
leaf_conf gateway "$GATEWAY_PORT" "$GATEWAY_MON_PORT" "$HUB_LEAF_PORT" >"$DIR/conf/gateway.conf"
leaf_conf edge "$EDGE_PORT" "$EDGE_MON_PORT" "$EDGE_UPLINK_PORT" >"$DIR/conf/edge.conf"

cat >"$DIR/conf/mosquitto.conf" <<EOF
# The edge's MQTT broker.
listener $MQTT_PORT 127.0.0.1
allow_anonymous true
persistence false
log_dest stderr
EOF

for c in hub gateway edge; do
    "$NATS_SERVER" -c "$DIR/conf/$c.conf" -t >"$DIR/logs/$c-config-check.log" 2>&1 ||
        die "$DIR/conf/$c.conf is invalid: $(cat "$DIR/logs/$c-config-check.log")"
    rm -f "$DIR/logs/$c-config-check.log"
done

# ---- starting and waiting ---------------------------------------------------------------

failed() {
    local rc=$?
    trap - EXIT
    if [ "$rc" -ne 0 ]; then
        printf 'up.sh: start failed; stopping what was started (logs stay in %s/logs)\n' "$DIR" >&2
        "$here/down.sh" "$DIR" >&2 || true
    fi
    exit "$rc"
}
trap failed EXIT

# start NAME CMD...: runs CMD in a session of its own (so down.sh can end it and whatever
# it forks), output to logs/NAME.log, pid to run/NAME.pid.
start() {
    local name="$1"
    shift
    setsid "$@" >>"$DIR/logs/$name.log" 2>&1 </dev/null &
    echo $! >"$DIR/run/$name.pid"
}

pid_of() { cat "$DIR/run/$1.pid"; }

show_log() {
    printf -- '--- last lines of %s ---\n' "$DIR/logs/$1.log" >&2
    tail -n 20 "$DIR/logs/$1.log" >&2 || true
}

# wait_for NAME SECONDS WHAT CMD...: until CMD succeeds, while NAME's process lives.
wait_for() {
    local name="$1" seconds="$2" what="$3" i
    shift 3
    for ((i = 0; i < seconds * 4; i++)); do
        if "$@"; then return 0; fi
        if ! alive "$(pid_of "$name")"; then
            show_log "$name"
            die "$name exited while waiting for $what"
        fi
        sleep 0.25
    done
    show_log "$name"
    die "timed out after ${seconds}s waiting for $what"
}

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

leafz_count() { # MON_PORT: how many leaf connections the server's /leafz lists
    curl -fsS --max-time 2 "http://127.0.0.1:$1/leafz" 2>/dev/null |
        sed -n 's/^ *"leafnodes": *\([0-9]*\).*/\1/p'
}
leaf_connected() { [ "$(leafz_count "$1")" = "${2:-1}" ]; }

hosts_json() {
    "$TRELLIS" --nats-url "nats://127.0.0.1:$HUB_PORT" --js-domain "$JS_DOMAIN" \
        get hosts -o json 2>/dev/null
}
host_listed() {
    hosts_json | grep -Eq "\"friendly_name\": *\"$1\""
}

log "starting in $DIR"

start hub "$NATS_SERVER" -c "$DIR/conf/hub.conf"
wait_for hub 15 "the hub's NATS on 127.0.0.1:$HUB_PORT" listening "$HUB_PORT"
wait_for hub 15 "the hub's leaf listener on 127.0.0.1:$HUB_LEAF_PORT" listening "$HUB_LEAF_PORT"

start uplink "$SOCAT" "TCP-LISTEN:$EDGE_UPLINK_PORT,bind=127.0.0.1,fork,reuseaddr,nodelay" \
    "TCP:127.0.0.1:$HUB_LEAF_PORT,nodelay"
wait_for uplink 10 "the edge uplink forwarder on 127.0.0.1:$EDGE_UPLINK_PORT" \
    listening "$EDGE_UPLINK_PORT"

start gateway "$NATS_SERVER" -c "$DIR/conf/gateway.conf"
start edge "$NATS_SERVER" -c "$DIR/conf/edge.conf"
wait_for gateway 15 "the gateway leaf's NATS on 127.0.0.1:$GATEWAY_PORT" listening "$GATEWAY_PORT"
wait_for edge 15 "the edge leaf's NATS on 127.0.0.1:$EDGE_PORT" listening "$EDGE_PORT"
wait_for gateway 20 "the gateway leaf to connect to the hub" leaf_connected "$GATEWAY_MON_PORT"
wait_for edge 20 "the edge leaf to connect to the hub (through the forwarder)" \
    leaf_connected "$EDGE_MON_PORT"
wait_for hub 10 "the hub's /leafz to list both leaves" leaf_connected "$HUB_MON_PORT" 2

start mosquitto "$MOSQUITTO" -c "$DIR/conf/mosquitto.conf"
wait_for mosquitto 10 "mosquitto on 127.0.0.1:$MQTT_PORT" listening "$MQTT_PORT"

start deploy "$TRELLIS_DEPLOY" --nats-url "nats://127.0.0.1:$HUB_PORT" --js-domain "$JS_DOMAIN"

host_args=(--js-domain "$JS_DOMAIN")
start host-cloud "$TRELLIS_HOST" --nats-url "nats://127.0.0.1:$HUB_PORT" "${host_args[@]}" \
    --label tier=cloud --state-dir "$DIR/state/cloud" --name cloud-1
start host-gateway "$TRELLIS_HOST" --nats-url "nats://127.0.0.1:$GATEWAY_PORT" "${host_args[@]}" \
    --label tier=gateway --state-dir "$DIR/state/gateway" --name gateway-1
start host-edge "$TRELLIS_HOST" --nats-url "nats://127.0.0.1:$EDGE_PORT" "${host_args[@]}" \
    --label tier=edge --state-dir "$DIR/state/edge" --name edge-1 --gpio-sim sim0=8

wait_for host-cloud 60 "host cloud-1 in \`trellis get hosts\` (via the hub)" host_listed cloud-1
wait_for host-gateway 60 "host gateway-1 in \`trellis get hosts\` (via the hub)" host_listed gateway-1
wait_for host-edge 60 "host edge-1 in \`trellis get hosts\` (via the hub)" host_listed edge-1
alive "$(pid_of deploy)" || {
    show_log deploy
    die "trellis-deploy exited"
}

trap - EXIT

# ---- what runs where --------------------------------------------------------------------

row() { printf '%-8s %-15s %-29s %-8s %s\n' "$@"; }
echo
row ROLE PROCESS ADDRESS PID LOG
row hub nats-server "nats://127.0.0.1:$HUB_PORT" "$(pid_of hub)" "$DIR/logs/hub.log"
row "" "  leafnodes" "127.0.0.1:$HUB_LEAF_PORT" "" ""
row "" "  monitoring" "http://127.0.0.1:$HUB_MON_PORT" "" ""
row hub trellis-deploy "-> hub" "$(pid_of deploy)" "$DIR/logs/deploy.log"
row hub "trellis-host" "cloud-1 -> hub" "$(pid_of host-cloud)" "$DIR/logs/host-cloud.log"
row gateway "nats-server" "nats://127.0.0.1:$GATEWAY_PORT" "$(pid_of gateway)" "$DIR/logs/gateway.log"
row "" "  monitoring" "http://127.0.0.1:$GATEWAY_MON_PORT" "" ""
row gateway "trellis-host" "gateway-1 -> gateway" "$(pid_of host-gateway)" "$DIR/logs/host-gateway.log"
row edge "socat (uplink)" "127.0.0.1:$EDGE_UPLINK_PORT -> :$HUB_LEAF_PORT" "$(pid_of uplink)" "$DIR/logs/uplink.log"
row edge "nats-server" "nats://127.0.0.1:$EDGE_PORT" "$(pid_of edge)" "$DIR/logs/edge.log"
row "" "  monitoring" "http://127.0.0.1:$EDGE_MON_PORT" "" ""
row edge "trellis-host" "edge-1 -> edge" "$(pid_of host-edge)" "$DIR/logs/host-edge.log"
row edge mosquitto "mqtt://127.0.0.1:$MQTT_PORT" "$(pid_of mosquitto)" "$DIR/logs/mosquitto.log"

cat <<EOF

JetStream domains: hub (lattice state), gateway, edge (local buffering on each leaf).
Leaf connections: http://127.0.0.1:$HUB_MON_PORT/leafz

Hosts (trellis get hosts, via the hub):
EOF
"$TRELLIS" --nats-url "nats://127.0.0.1:$HUB_PORT" --js-domain "$JS_DOMAIN" get hosts || true

cat <<EOF

Talk to the lattice through the hub (or: source $DIR/env):
  export NATS_URL=nats://127.0.0.1:$HUB_PORT TRELLIS_JS_DOMAIN=$JS_DOMAIN
  export PATH="$(dirname "$TRELLIS"):\$PATH"

Next steps (from $repo):
  examples/build.sh                                      # once: the example components
  trellis config put edge-mqtt url=mqtt://127.0.0.1:$MQTT_PORT
  trellis app deploy examples/apps/sensors.yaml --wait
  trellis gpio set edge-1 sim0:1 1                       # d0=1
  trellis gpio set edge-1 sim0:3 1                       # d2=1: the value is 5
  trellis gpio set edge-1 sim0:0 1                       # strobe rises: one reading
  curl http://127.0.0.1:$HTTP_PORT/sensors                     # port: the manifest's sensors-http-address

Cut and restore the edge's uplink:  $here/cut.sh off $DIR  /  $here/cut.sh on $DIR
Stop:                                $here/down.sh $DIR   (--clean also removes $DIR)
EOF
