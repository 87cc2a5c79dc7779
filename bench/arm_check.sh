#!/usr/bin/env bash
# ARM check: does the runtime install from wheels on 64-bit ARM, and does it hear the same
# keywords there as on x86?
#
# Builds a Debian bookworm arm64 root (Raspberry Pi OS Bookworm is bookworm, Python 3.11)
# with debootstrap, runs it under qemu-user-static, installs kwspi there WITHOUT torch from
# aarch64 wheels, runs `kwspi listen --input --json` with the bundled model on a synthesized
# test stream, and compares the detections with the x86 ones (same labels at the same
# times; scores within SCORE_TOL). Exit status 0 only when they agree. stdout carries only
# the final JSON report; progress and logs go to stderr.
#
# Not in CI: it needs root and takes about a quarter of an hour (most of it the emulated
# debootstrap second stage). Emulated timings say nothing about a Pi; this checks
# correctness only. research/feasibility.md, section 5, found the pitfalls handled below.
#
#   sudo bench/arm_check.sh [ROOT]          # ROOT defaults to /var/tmp/kwspi-arm64
#
# Re-running reuses a finished root (the marker file .kwspi-base-done) and reinstalls kwspi.
# Environment: PYTHON (host python with kwspi installed; default .venv/bin/python),
# MIRROR (Debian mirror), SECONDS_OF_AUDIO (test stream length, default 30), SCORE_TOL.
set -euo pipefail

cd "$(dirname "$0")/.."
REPO=$PWD
ROOT=${1:-/var/tmp/kwspi-arm64}
PYTHON=${PYTHON:-$REPO/.venv/bin/python}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SECONDS_OF_AUDIO=${SECONDS_OF_AUDIO:-30}
SCORE_TOL=${SCORE_TOL:-0.01}
WORK=$ROOT/kwspi-check           # shared between host and chroot; /kwspi-check inside
# Keep stdout for the final JSON report (fd 3); every tool's chatter goes to stderr.
exec 3>&1 1>&2
step() { printf '\n== %s (%ds)\n' "$*" "$SECONDS"; }

[ "$(id -u)" = 0 ] || { echo "arm_check.sh: needs root (debootstrap, chroot, binfmt_misc)" >&2; exit 2; }

step "host tools"
if ! command -v debootstrap >/dev/null || ! command -v qemu-aarch64-static >/dev/null \
        || ! command -v update-binfmts >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user-static debootstrap binfmt-support
fi

# Without systemd as PID 1 nobody mounts binfmt_misc or registers qemu. The F (fix-binary)
# flag update-binfmts sets means the kernel holds the interpreter open, so the chroot needs
# no copy of qemu-aarch64-static. Undo what we did on exit, leave what was there.
mounted_binfmt=0 enabled_qemu=0
cleanup() {
    if [ "$enabled_qemu" = 1 ]; then update-binfmts --disable qemu-aarch64 || true; fi
    if [ "$mounted_binfmt" = 1 ]; then umount /proc/sys/fs/binfmt_misc || true; fi
}
trap cleanup EXIT
if [ ! -e /proc/sys/fs/binfmt_misc/status ]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    mounted_binfmt=1
fi
if ! grep -q '^enabled' /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null; then
    update-binfmts --enable qemu-aarch64
    enabled_qemu=1
fi

# The chroot gets a clean environment: the host's PIP_FIND_LINKS, PIP_CERT etc. would leak
# in and point at paths that do not exist there. /proc and /sys are NOT mounted: with the
# host's /sys, onnxruntime's cpuinfo reads the x86 topology and segfaults under qemu;
# without them it only warns ("Error in cpuinfo: ...").
in_root() {
    chroot "$ROOT" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin HOME=/root LANG=C.UTF-8 "$@"
}

if [ ! -e "$ROOT/.kwspi-base-done" ]; then
    step "debootstrap, first stage (host)"
    rm -rf "$ROOT"
    debootstrap --arch=arm64 --foreign --variant=minbase \
        --include=python3,python3-venv,python3-pip,ca-certificates bookworm "$ROOT" "$MIRROR"
    step "debootstrap, second stage (emulated, a few minutes)"
    chroot "$ROOT" /debootstrap/debootstrap --second-stage
    touch "$ROOT/.kwspi-base-done"
fi
in_root python3 -c 'import platform; print("chroot:", platform.machine(), "Python", platform.python_version())'
PYVER=$(in_root python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')

step "aarch64 wheels (host)"
# pip inside the chroot cannot verify this network's TLS, so the host downloads for it.
# pip matches --platform exactly (no fallback to older manylinux tags): list them all.
rm -rf "$WORK" && mkdir -p "$WORK/wheels"
"$PYTHON" -m pip wheel -q --no-deps -w "$WORK/wheels" "$REPO"            # kwspi, bundled model inside
"$PYTHON" -m pip wheel -q --no-deps -w "$WORK/wheels" python_speech_features  # no wheel on PyPI
platforms=()
for tag in manylinux_2_36_aarch64 manylinux_2_34_aarch64 manylinux_2_28_aarch64 manylinux_2_27_aarch64 \
           manylinux_2_26_aarch64 manylinux_2_17_aarch64 manylinux2014_aarch64 linux_aarch64; do
    platforms+=(--platform "$tag")
done
"$PYTHON" -m pip download -q --only-binary=:all: "${platforms[@]}" --python-version "$PYVER" \
    --implementation cp --find-links "$WORK/wheels" -d "$WORK/wheels" "$WORK"/wheels/kwspi-*.whl
ls "$WORK/wheels"

step "install the runtime in the chroot (emulated)"
in_root rm -rf /opt/kwspi
in_root python3 -m venv /opt/kwspi
in_root /opt/kwspi/bin/pip install -q --no-index --find-links /kwspi-check/wheels kwspi
if in_root /opt/kwspi/bin/python -c 'import torch' 2>/dev/null; then
    echo "arm_check.sh: torch is installed in the runtime venv; it should not be" >&2; exit 1
fi
in_root /opt/kwspi/bin/pip list 2>/dev/null | grep -i -E 'kwspi|onnxruntime|numpy|scipy' >&2 || true

step "test stream and x86 detections (host)"
"$REPO/.venv/bin/kwspi" synth-stream "$WORK/stream.wav" --seconds "$SECONDS_OF_AUDIO" --seed 7
"$REPO/.venv/bin/kwspi" listen --input "$WORK/stream.wav" --json > "$WORK/x86.jsonl"

step "aarch64 detections (emulated)"
# cpuinfo's warnings go to stderr; stdout holds only the detections.
in_root /opt/kwspi/bin/kwspi listen --input /kwspi-check/stream.wav --json \
    > "$WORK/arm64.jsonl" 2> "$WORK/arm64.stderr" || { cat "$WORK/arm64.stderr" >&2; exit 1; }

step "compare"
"$PYTHON" - "$WORK/x86.jsonl" "$WORK/arm64.jsonl" "$SCORE_TOL" >&3 <<'EOF'
import json, sys

x86, arm, tol = sys.argv[1], sys.argv[2], float(sys.argv[3])
load = lambda p: [json.loads(line) for line in open(p) if line.strip()]
a, b = load(x86), load(arm)
same_events = [(d["label"], d["time"]) for d in a] == [(d["label"], d["time"]) for d in b]
score_diff = max((abs(p["score"] - q["score"]) for p, q in zip(a, b)), default=0.0)
ok = same_events and score_diff <= tol
print(json.dumps({"benchmark": "arm_check", "ok": ok, "detections_x86": len(a), "detections_arm64": len(b),
                  "same_labels_and_times": same_events, "max_score_diff": round(score_diff, 6),
                  "x86": a, "arm64": b}, indent=2))
sys.exit(0 if ok else 1)
EOF
step "done"
