# Installs Debian packages that are missing; runs `apt-get update` at most once per run.
# Source it, then: apt_install pkg...
apt_install() {
    local missing=()
    local pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    if [ -z "${TRELLIS_APT_UPDATED:-}" ]; then
        echo "==> apt-get update" >&2
        $sudo apt-get update -qq >&2
        export TRELLIS_APT_UPDATED=1
    fi
    echo "==> apt-get install ${missing[*]}" >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}
