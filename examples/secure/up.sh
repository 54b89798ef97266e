#!/usr/bin/env bash
# Runs a secured lattice on this machine: a nats-server with TLS (client certificates
# required) and one nkey user per role (nats.conf from make-keys.sh), two hosts under their
# host users, the deployment manager under the manager user, then, as the operator, deploys
# examples/apps/hello-http.yaml and calls it over HTTP; then shows what the other users may
# not do.
#
# Usage: examples/secure/up.sh [DIR]   (DIR: ${TRELLIS_SECURE_DIR:-/tmp/trellis-secure})
# Keys, configuration, logs and pid files go under DIR (make-keys.sh runs first when DIR has
# no nats.conf); examples/secure/down.sh DIR stops it all. NATS_PORT (default 24322) is the
# server's port; the hello app serves on 127.0.0.1:8080 (its manifest).
# Binaries: $TRELLIS_BIN, else the repo's target/release, then target/debug.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
DIR="${1:-${TRELLIS_SECURE_DIR:-/tmp/trellis-secure}}"
case "$DIR" in
    -h | --help)
        awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
        exit 0
        ;;
esac
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"
NATS_PORT="${NATS_PORT:-24322}"

log() { printf 'up.sh: %s\n' "$*" >&2; }
die() {
    printf 'up.sh: error: %s\n' "$*" >&2
    exit 1
}

bin_dir="${TRELLIS_BIN:-}"
if [ -z "$bin_dir" ]; then
    for d in "$repo/target/release" "$repo/target/debug"; do
        if [ -x "$d/trellis-host" ] && [ -x "$d/trellis-deploy" ] && [ -x "$d/trellis" ]; then
            bin_dir="$d"
            break
        fi
    done
fi
[ -n "$bin_dir" ] || die "build the binaries first: cargo build --release --bins"
command -v nats-server >/dev/null || die "nats-server is not installed: apt-get install nats-server"
[ -f "$repo/target/components/hello-http.wasm" ] || die "build the components first: examples/build.sh"
if [ -f "$DIR/pids" ]; then
    while read -r pid; do
        kill -0 "$pid" 2>/dev/null && die "already running (see $DIR/pids); run examples/secure/down.sh $DIR first"
    done <"$DIR/pids"
fi
: >"$DIR/pids"

[ -f "$DIR/nats.conf" ] || TRELLIS="$bin_dir/trellis" "$here/make-keys.sh" "$DIR"
# shellcheck disable=SC1091
. "$DIR/keys.env"

# Every Trellis process shows the client certificate and checks the server's against the CA.
export NATS_URL="tls://127.0.0.1:$NATS_PORT"
export NATS_TLS_CA="$DIR/ca.pem" NATS_TLS_CERT="$DIR/client.pem" NATS_TLS_KEY="$DIR/client-key.pem"
export TRELLIS_LATTICE="$LATTICE"
unset NATS_CREDS NATS_NKEY NATS_USER NATS_PASSWORD NATS_TOKEN

start() { # NAME COMMAND...
    local name="$1"
    shift
    "$@" >"$DIR/$name.log" 2>&1 &
    echo $! >>"$DIR/pids"
    log "started $name (pid $!, log $DIR/$name.log)"
}

start nats nats-server -c "$DIR/nats.conf" -a 127.0.0.1 -p "$NATS_PORT" -sd "$DIR/jetstream"
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$NATS_PORT") 2>/dev/null && break
    sleep 0.1
done
for n in $(seq 1 "$HOSTS"); do
    NATS_NKEY="$DIR/host$n.nk" start "host$n" "$bin_dir/trellis-host" \
        --seed-file "$DIR/host$n.seed" --state-dir "$DIR/host$n" --name "host$n"
done
NATS_NKEY="$DIR/manager.nk" start manager "$bin_dir/trellis-deploy"

as() { # USER trellis ARGS...
    local user="$1"
    shift
    NATS_NKEY="$DIR/$user.nk" "$bin_dir/trellis" "$@"
}
for _ in $(seq 100); do
    [ "$(as operator get hosts -o json 2>/dev/null | grep -o '"id"' | wc -l)" -ge "$HOSTS" ] && break
    sleep 0.2
done

echo "\$ trellis get hosts                      # as the operator"
as operator get hosts
echo "\$ trellis app deploy examples/apps/hello-http.yaml --wait"
as operator app deploy "$repo/examples/apps/hello-http.yaml" --wait
echo "\$ curl http://127.0.0.1:8080/hello"
for _ in $(seq 50); do curl -fsS http://127.0.0.1:8080/hello 2>/dev/null && break || sleep 0.2; done
echo
echo "\$ trellis component scale hello --host \$HOST2_ID --replicas 0    # as host1's user"
as host1 component scale hello --host "$HOST2_ID" --replicas 0 || true
echo "\$ trellis link put hello greeter wasi:http --interface incoming-handler   # as host1's user"
as host1 link put hello greeter wasi:http --interface incoming-handler || true
echo "\$ trellis app delete hello-http                                # as host1's user"
as host1 app delete hello-http || true
echo "\$ trellis get hosts                                            # as the provider user"
as provider get hosts || true
echo "\$ trellis get hosts                                            # with no nkey"
"$bin_dir/trellis" get hosts || true
echo "\$ trellis get hosts --nats-tls-ca $DIR/client.pem             # the wrong CA"
as operator get hosts --nats-tls-ca "$DIR/client.pem" || true
log "running; examples/secure/down.sh $DIR stops it"
