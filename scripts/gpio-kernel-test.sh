#!/usr/bin/env bash
# Runs one statically linked Linux x86_64 test executable inside a small qemu VM whose
# kernel has the gpio-sim driver, and exits with the test's exit code.
#
#   scripts/gpio-kernel-test.sh PATH/TO/static-test-binary [ARGS...]
#
# The kernel (Debian's linux-source-6.1, tinyconfig plus the fragment below) is built once
# into target/gpio-kernel/ and rebuilt only when the source package or the fragment
# changes. Each run packs an initramfs (busybox, the test as /test, an /init that creates a
# gpio-sim device with two chips through configfs) and boots it with TCG (no KVM), no
# network and no disk. The console is streamed to stdout and kept in
# target/gpio-kernel/last-run.log.
#
# What the test sees (environment):
#   GPIO_SIM_DEV        platform device name, e.g. gpio-sim.0
#   GPIO_SIM_CHIP0      bank0: 8 lines, label trellis-sim, line 0 "button", line 1 "led"
#   GPIO_SIM_CHIP1      bank1: 4 unnamed lines
#   GPIO_SIM_PULL_DIR   /sys/devices/platform/$GPIO_SIM_DEV/$GPIO_SIM_CHIP0; write
#                       pull-up or pull-down to $GPIO_SIM_PULL_DIR/sim_gpioK/pull to drive
#                       input line K, read sim_gpioK/value to see what the test drives
#   GPIO_SIM_PULL_DIR1  the same for $GPIO_SIM_CHIP1
#   GPIO_SIM_CONFIG_DIR /sys/kernel/config/gpio-sim/trellis (the configfs device)
# and on PATH: gpio-sim-remove (takes the device down: both chips and their /dev nodes
# disappear) and gpio-sim-add (brings it back under new chip names, which it prints as
# GPIO_SIM_CHIP0=... and GPIO_SIM_CHIP1=... lines). RUST_BACKTRACE, RUST_LOG,
# RUST_TEST_THREADS and RUST_MIN_STACK are passed through when set.
#
# Knobs: TRELLIS_GPIO_VM_MEMORY (default 512M), TRELLIS_GPIO_VM_TIMEOUT (seconds, 600).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=lib/apt.sh
source "$root/scripts/lib/apt.sh"

out="$root/target/gpio-kernel"
marker="TRELLIS-GPIO-TEST-EXIT="
setup_failed="TRELLIS-GPIO-SETUP-FAILED:"
memory="${TRELLIS_GPIO_VM_MEMORY:-512M}"
vm_timeout="${TRELLIS_GPIO_VM_TIMEOUT:-600}"

# Added to `make tinyconfig`; every line must hold in the final .config. Bump
# recipe_version when the build steps change (it is part of the stamp).
recipe_version=1
kernel_config="\
CONFIG_64BIT=y
CONFIG_PRINTK=y
CONFIG_BUG=y
CONFIG_TTY=y
CONFIG_SERIAL_8250=y
CONFIG_SERIAL_8250_CONSOLE=y
CONFIG_BLK_DEV_INITRD=y
CONFIG_BINFMT_ELF=y
CONFIG_BINFMT_SCRIPT=y
CONFIG_PROC_FS=y
CONFIG_SYSFS=y
CONFIG_DEVTMPFS=y
CONFIG_DEVTMPFS_MOUNT=y
CONFIG_TMPFS=y
CONFIG_CONFIGFS_FS=y
CONFIG_GPIOLIB=y
CONFIG_GPIO_CDEV=y
CONFIG_GPIO_SIM=y
CONFIG_MULTIUSER=y
CONFIG_FUTEX=y
CONFIG_EPOLL=y
CONFIG_EVENTFD=y
CONFIG_TIMERFD=y
CONFIG_SIGNALFD=y
CONFIG_SHMEM=y
CONFIG_POSIX_TIMERS=y
CONFIG_HIGH_RES_TIMERS=y
CONFIG_ADVISE_SYSCALLS=y
CONFIG_MEMBARRIER=y
CONFIG_RSEQ=y
CONFIG_FILE_LOCKING=y
CONFIG_NET=y
CONFIG_UNIX=y
CONFIG_RANDOM_TRUST_CPU=y
"

die() {
    echo "gpio-kernel-test: $*" >&2
    exit 1
}

if [ $# -lt 1 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ]; then
    echo "usage: $0 PATH/TO/static-test-binary [ARGS...]" >&2
    exit 2
fi
test_bin="$1"
shift

apt_install qemu-system-x86 linux-source-6.1 busybox-static cpio xz-utils \
    build-essential bc bison flex libelf-dev libssl-dev

[ -f "$test_bin" ] || die "$test_bin: no such file"
readelf -h "$test_bin" 2>/dev/null | grep -q 'Machine:.*X86-64' \
    || die "$test_bin: not an x86_64 ELF executable"
if readelf -lW "$test_bin" | grep -q 'Requesting program interpreter'; then
    die "$test_bin: dynamically linked; the VM has no libc. Link it statically (Rust: RUSTFLAGS='-C target-feature=+crt-static' --target x86_64-unknown-linux-gnu)"
fi

# --- kernel, built once -------------------------------------------------------------------

kmake() {
    make -C "$out/src" ARCH=x86_64 "$@"
}

build_kernel() {
    local source_version config_hash want
    source_version="$(dpkg-query -W -f='${Version}' linux-source-6.1)"
    config_hash="$(printf '%s\n%s' "$recipe_version" "$kernel_config" | sha256sum | cut -c1-16)"
    want="linux-source-6.1=$source_version config=$config_hash"
    if [ -f "$out/bzImage" ] && [ "$(cat "$out/stamp" 2>/dev/null)" = "$want" ]; then
        return 0
    fi

    local started=$SECONDS
    : >"$out/build.log"
    if [ "$(cat "$out/src/.trellis-source" 2>/dev/null)" != "$source_version" ]; then
        echo "==> unpacking linux-source-6.1 $source_version into $out/src" >&2
        rm -rf "$out/src"
        mkdir -p "$out/src"
        tar -xf /usr/src/linux-source-6.1.tar.xz -C "$out/src" --strip-components=1
        echo "$source_version" >"$out/src/.trellis-source"
    fi

    echo "==> configuring the kernel (tinyconfig + gpio-sim fragment)" >&2
    printf '%s' "$kernel_config" >"$out/trellis.config"
    {
        kmake tinyconfig \
            && (cd "$out/src" && ARCH=x86_64 scripts/kconfig/merge_config.sh -m .config "$out/trellis.config") \
            && kmake olddefconfig
    } >>"$out/build.log" 2>&1 || die "kernel configuration failed; see $out/build.log"
    local line incomplete=0
    while IFS= read -r line; do
        if ! grep -qx "$line" "$out/src/.config"; then
            echo "gpio-kernel-test: $line did not stick in .config (a dependency is off)" >&2
            incomplete=1
        fi
    done <"$out/trellis.config"
    [ "$incomplete" -eq 0 ] || die "kernel configuration is incomplete; see $out/src/.config"

    echo "==> building the kernel (make -j$(nproc) bzImage; log: $out/build.log)" >&2
    if ! kmake -j"$(nproc)" bzImage 2>&1 | tee -a "$out/build.log" \
        | awk '/^  [A-Z]+ / { n++; if (n % 400 == 0) { printf "    %d build steps\n", n; fflush() } }' >&2; then
        tail -n 30 "$out/build.log" >&2
        die "kernel build failed; see $out/build.log"
    fi
    cp "$out/src/arch/x86/boot/bzImage" "$out/bzImage"
    echo "$want" >"$out/stamp"
    echo "==> kernel built in $((SECONDS - started))s: $out/bzImage ($(stat -c %s "$out/bzImage") bytes)" >&2
}

mkdir -p "$out"
exec 9>"$out/lock"
flock 9
build_kernel
flock -u 9

# --- initramfs, packed every run ----------------------------------------------------------

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
rootfs="$tmp/root"
mkdir -p "$rootfs"/{bin,dev,proc,sys,tmp}
cp /bin/busybox "$rootfs/bin/busybox"
ln -s busybox "$rootfs/bin/sh"
cp "$test_bin" "$rootfs/test"
chmod 0755 "$rootfs/test"

# Single-quotes a word for the guest's sh.
quote() {
    local q="'"
    printf "'%s'" "${1//$q/$q\\$q$q}"
}

test_cmd="/test"
for arg in "$@"; do
    test_cmd+=" $(quote "$arg")"
done
test_env=""
for name in RUST_BACKTRACE RUST_LOG RUST_TEST_THREADS RUST_MIN_STACK; do
    if [ -n "${!name:-}" ]; then
        test_env+="export $name=$(quote "${!name}")"$'\n'
    fi
done

cat >"$rootfs/bin/gpio-sim-remove" <<'SH'
#!/bin/sh
# Takes the gpio-sim device down: both chips and their /dev nodes disappear.
echo 0 > /sys/kernel/config/gpio-sim/trellis/live
SH
cat >"$rootfs/bin/gpio-sim-add" <<'SH'
#!/bin/sh
# Brings the gpio-sim device back. The chips get new names (gpiochip2, ...); this prints
# them as GPIO_SIM_CHIP0=... and GPIO_SIM_CHIP1=... lines.
cfg=/sys/kernel/config/gpio-sim/trellis
echo 1 > "$cfg/live" || exit 1
echo "GPIO_SIM_CHIP0=$(cat "$cfg/bank0/chip_name")"
echo "GPIO_SIM_CHIP1=$(cat "$cfg/bank1/chip_name")"
SH
chmod 0755 "$rootfs/bin/gpio-sim-remove" "$rootfs/bin/gpio-sim-add"

cat >"$rootfs/init" <<SH
#!/bin/sh
/bin/busybox --install -s /bin
export PATH=/bin HOME=/ TERM=dumb

fail() {
    echo "$setup_failed \$*"
    sleep 1
    reboot -f
}

mount -t proc proc /proc || fail "mount proc"
mount -t sysfs sysfs /sys || fail "mount sysfs"
mount -t devtmpfs devtmpfs /dev || fail "mount devtmpfs"
mount -t configfs configfs /sys/kernel/config || fail "mount configfs"
mount -t tmpfs tmpfs /tmp || fail "mount tmpfs"

cfg=/sys/kernel/config/gpio-sim/trellis
mkdir "\$cfg" "\$cfg/bank0" "\$cfg/bank1" || fail "mkdir in /sys/kernel/config/gpio-sim"
echo 8 > "\$cfg/bank0/num_lines" || fail "bank0/num_lines"
if [ -e "\$cfg/bank0/label" ]; then
    echo trellis-sim > "\$cfg/bank0/label" || fail "bank0/label"
fi
mkdir "\$cfg/bank0/line0" "\$cfg/bank0/line1" || fail "mkdir bank0/lineN"
echo button > "\$cfg/bank0/line0/name" || fail "bank0/line0/name"
echo led > "\$cfg/bank0/line1/name" || fail "bank0/line1/name"
echo 4 > "\$cfg/bank1/num_lines" || fail "bank1/num_lines"
echo 1 > "\$cfg/live" || fail "live"

GPIO_SIM_DEV=\$(cat "\$cfg/dev_name")
GPIO_SIM_CHIP0=\$(cat "\$cfg/bank0/chip_name")
GPIO_SIM_CHIP1=\$(cat "\$cfg/bank1/chip_name")
GPIO_SIM_PULL_DIR=/sys/devices/platform/\$GPIO_SIM_DEV/\$GPIO_SIM_CHIP0
GPIO_SIM_PULL_DIR1=/sys/devices/platform/\$GPIO_SIM_DEV/\$GPIO_SIM_CHIP1
GPIO_SIM_CONFIG_DIR=\$cfg
export GPIO_SIM_DEV GPIO_SIM_CHIP0 GPIO_SIM_CHIP1 GPIO_SIM_PULL_DIR GPIO_SIM_PULL_DIR1 GPIO_SIM_CONFIG_DIR
[ -c "/dev/\$GPIO_SIM_CHIP0" ] || fail "/dev/\$GPIO_SIM_CHIP0 is missing"
[ -c "/dev/\$GPIO_SIM_CHIP1" ] || fail "/dev/\$GPIO_SIM_CHIP1 is missing"
[ -e "\$GPIO_SIM_PULL_DIR/sim_gpio0/pull" ] || fail "\$GPIO_SIM_PULL_DIR/sim_gpio0/pull is missing"
echo "trellis-gpio: \$GPIO_SIM_DEV ready (\$GPIO_SIM_CHIP0, \$GPIO_SIM_CHIP1) at uptime \$(cut -d' ' -f1 /proc/uptime)s"

$test_env
cd /tmp
$test_cmd
code=\$?
echo "trellis-gpio: /test exited with \$code at uptime \$(cut -d' ' -f1 /proc/uptime)s"
echo "${marker}\$code"
# Let the serial port drain before the reset (qemu -no-reboot exits on it).
sleep 0.2
reboot -f
SH
chmod 0755 "$rootfs/init"

(cd "$rootfs" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) >"$tmp/initramfs.cpio"

# --- boot ---------------------------------------------------------------------------------

echo "==> booting $(basename "$test_bin") in qemu (TCG, $memory, timeout ${vm_timeout}s)" >&2
run_log="$tmp/run.log"
started="$(date +%s.%N)"
set +e
# TCG, not KVM (KVM guests hang on our CI machines). -cpu max gives the guest RDRAND, which
# with CONFIG_RANDOM_TRUST_CPU seeds the kernel's RNG at boot: getrandom(2) without flags
# returns at once instead of blocking about a second. The serial port alone is on stdio
# (-nographic would also put SeaBIOS's screen-clearing escapes there); -no-reboot turns the
# guest's final reboot into qemu exiting.
timeout "$vm_timeout" qemu-system-x86_64 -accel tcg -cpu max -m "$memory" \
    -display none -serial stdio -monitor none -no-reboot -nic none \
    -kernel "$out/bzImage" -initrd "$tmp/initramfs.cpio" \
    -append "console=ttyS0 panic=-1 quiet" </dev/null 2>&1 | sed -u 's/\r$//' | tee "$run_log"
qemu_status=${PIPESTATUS[0]}
set -e
elapsed="$(echo "$(date +%s.%N) - $started" | bc)"
cp "$run_log" "$out/last-run.log"

result="$(grep -ao "${marker}[0-9]*" "$run_log" | tail -n 1 || true)"
if [ -z "$result" ]; then
    failure="$(grep -ao "${setup_failed}.*" "$run_log" | tail -n 1 || true)"
    if [ -n "$failure" ]; then
        die "gpio-sim setup failed in the VM (${failure#"$setup_failed" }); see $out/last-run.log"
    elif [ "$qemu_status" -eq 124 ]; then
        die "the VM did not finish within ${vm_timeout}s; see $out/last-run.log"
    fi
    die "the VM stopped (qemu status $qemu_status) without reporting the test's exit code; see $out/last-run.log"
fi
code="${result#"$marker"}"
printf '==> VM ran for %.1fs; test exited with %s\n' "$elapsed" "$code" >&2
exit "$code"
