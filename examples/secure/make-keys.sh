#!/usr/bin/env bash
# Makes everything a secured lattice needs, in DIR (created, mode 0700):
#
#   ca.pem ca-key.pem             a test CA (30 days)
#   server.pem server-key.pem     the NATS server's certificate, for 127.0.0.1 and localhost
#   client.pem client-key.pem     a client certificate every Trellis process shows
#   operator.nk manager.nk provider.nk caller.nk
#                                 nkey seeds of the NATS users (`trellis keys gen user`)
#   hostN.nk hostN.seed           host N's NATS user and its identity (`trellis keys gen
#                                 host`): the host id its permissions are scoped to
#   keys.env                      the public keys and host ids, as shell variables
#   nats.conf                     nats.conf.template filled in (with one host-user block per
#                                 host)
#
# Usage: examples/secure/make-keys.sh DIR
# Settings: LATTICE (default `default`), HOSTS (how many hosts, default 2), PROVIDER_ID (the
# provider user's id, default `kv`), CALLER_TARGET (what the component-caller may call,
# default `greeter`), TRELLIS (the CLI; default the repo's target/release, then
# target/debug, then PATH). Needs openssl.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
die() {
    printf 'make-keys.sh: error: %s\n' "$*" >&2
    exit 1
}

DIR="${1:-}"
case "$DIR" in
    "" | -h | --help)
        awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
        [ -n "$DIR" ] && exit 0
        exit 2
        ;;
esac
LATTICE="${LATTICE:-default}"
HOSTS="${HOSTS:-2}"
PROVIDER_ID="${PROVIDER_ID:-kv}"
CALLER_TARGET="${CALLER_TARGET:-greeter}"
for name in "$LATTICE" "$PROVIDER_ID" "$CALLER_TARGET"; do
    [[ "$name" =~ ^[A-Za-z0-9_-]+$ ]] || die "'$name' is not one subject token (letters, digits, - and _)"
done
[[ "$HOSTS" =~ ^[1-9][0-9]?$ ]] || die "HOSTS must be 1 to 99"

if [ -z "${TRELLIS:-}" ]; then
    for candidate in "$repo/target/release/trellis" "$repo/target/debug/trellis"; do
        if [ -x "$candidate" ]; then
            TRELLIS="$candidate"
            break
        fi
    done
fi
TRELLIS="${TRELLIS:-$(command -v trellis || true)}"
[ -n "$TRELLIS" ] || die "the trellis CLI is not built: cargo build --release --bins"
command -v openssl >/dev/null || die "openssl is not installed: apt-get install openssl"

mkdir -p "$DIR"
chmod 0700 "$DIR"
DIR="$(cd "$DIR" && pwd)"
umask 077

# ---- certificates (P-256 keys; the server's names are what clients dial) -----------------
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
key "$DIR/ca-key.pem"
openssl req -x509 -new -key "$DIR/ca-key.pem" -out "$DIR/ca.pem" -days 30 \
    -subj "/CN=Trellis test CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
sign() { # NAME CN EXTENSIONS
    key "$DIR/$1-key.pem"
    openssl req -new -key "$DIR/$1-key.pem" -out "$DIR/$1.csr" -subj "/CN=$2" 2>/dev/null
    printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature" "$3" \
        >"$DIR/$1.ext"
    openssl x509 -req -in "$DIR/$1.csr" -CA "$DIR/ca.pem" -CAkey "$DIR/ca-key.pem" \
        -CAcreateserial -out "$DIR/$1.pem" -days 30 -extfile "$DIR/$1.ext" 2>/dev/null
    rm -f "$DIR/$1.csr" "$DIR/$1.ext"
}
sign server localhost \
    "$(printf '%s\n%s' "extendedKeyUsage=serverAuth" "subjectAltName=IP:127.0.0.1,DNS:localhost")"
sign client trellis "extendedKeyUsage=clientAuth"
rm -f "$DIR/ca.srl"
chmod 0644 "$DIR/ca.pem" "$DIR/server.pem" "$DIR/client.pem"

# ---- nkeys: `trellis keys gen` writes the seed (0600) and prints the public key ----------
gen() { "$TRELLIS" keys gen "$1" --out "$2" --force; }
OPERATOR="$(gen user "$DIR/operator.nk")"
MANAGER="$(gen user "$DIR/manager.nk")"
PROVIDER="$(gen user "$DIR/provider.nk")"
CALLER="$(gen user "$DIR/caller.nk")"
{
    printf 'LATTICE=%s\nOPERATOR=%s\nMANAGER=%s\nPROVIDER=%s\nCALLER=%s\n' \
        "$LATTICE" "$OPERATOR" "$MANAGER" "$PROVIDER" "$CALLER"
    printf 'PROVIDER_ID=%s\nCALLER_TARGET=%s\nHOSTS=%s\n' "$PROVIDER_ID" "$CALLER_TARGET" "$HOSTS"
} >"$DIR/keys.env"

hosts=""
for n in $(seq 1 "$HOSTS"); do
    user="$(gen user "$DIR/host$n.nk")"
    id="$(gen host "$DIR/host$n.seed")"
    printf 'HOST%s_USER=%s\nHOST%s_ID=%s\n' "$n" "$user" "$n" "$id" >>"$DIR/keys.env"
    hosts+="$(sed -e "s|@HOST_NAME@|host$n|g" -e "s|@HOST_ID@|$id|g" \
        -e "s|@HOST_USER@|$user|g" -e "s|@LATTICE@|$LATTICE|g" \
        "$here/host-user.conf.template")"$'\n\n'
done

# ---- the server's configuration -----------------------------------------------------------
awk -v hosts="$hosts" '$0 == "@HOSTS@" { printf "%s", hosts; next } { print }' \
    "$here/nats.conf.template" |
    sed -e "s|@DIR@|$DIR|g" -e "s|@LATTICE@|$LATTICE|g" -e "s|@OPERATOR@|$OPERATOR|g" \
        -e "s|@MANAGER@|$MANAGER|g" -e "s|@PROVIDER@|$PROVIDER|g" -e "s|@CALLER@|$CALLER|g" \
        -e "s|@PROVIDER_ID@|$PROVIDER_ID|g" -e "s|@CALLER_TARGET@|$CALLER_TARGET|g" \
        >"$DIR/nats.conf"
chmod 0600 "$DIR/nats.conf"
grep -q '@[A-Z_]*@' "$DIR/nats.conf" && die "a placeholder is left in $DIR/nats.conf"

printf 'make-keys.sh: wrote the CA, certificates, %s nkey users and nats.conf to %s\n' \
    "$((HOSTS + 4))" "$DIR" >&2
