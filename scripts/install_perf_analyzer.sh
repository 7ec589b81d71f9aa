#!/usr/bin/env bash
# Install Triton's load tool perf_analyzer into build/perf-analyzer/ (git-ignored), as shipped
# in the PyPI wheel tritonclient (the binary only; tritonclient itself is not installed into
# .venv: 2.50 requires numpy<2).
#
#   build/perf-analyzer/bin/perf_analyzer   the binary
#   build/perf-analyzer/lib/libcudart.so.12 CUDA runtime it links against (from the PyPI wheel
#                                           nvidia-cuda-runtime-cu12; no GPU is needed)
#
# It also needs Debian's libb64-0d (libb64.so.0d), installed with apt-get when missing and
# running as root. Run it as:
#
#   LD_LIBRARY_PATH=build/perf-analyzer/lib build/perf-analyzer/bin/perf_analyzer --help
#
# Idempotent and quiet on success. PYTHON may name the interpreter whose pip downloads.
set -euo pipefail

TRITONCLIENT_VERSION=2.50.0
# CUDA 12.6, as Triton 24.09 (= tritonclient 2.50) was built with; ships libcudart.so.12.
CUDA_RUNTIME_VERSION=12.6.77

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$ROOT/build/perf-analyzer"
STAMP="$DEST/.installed-$TRITONCLIENT_VERSION-$CUDA_RUNTIME_VERSION"
PYTHON="${PYTHON:-}"
if [[ -z "$PYTHON" ]]; then
    if [[ -x "$ROOT/.venv/bin/python" ]] && "$ROOT/.venv/bin/python" -m pip --version \
        >/dev/null 2>&1; then
        PYTHON="$ROOT/.venv/bin/python"
    else
        PYTHON="$(command -v python3 || command -v python)"
    fi
fi

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
fail() {
    echo "install_perf_analyzer: $*" >&2
    if [[ -s "$log" ]]; then cat "$log" >&2; fi
    exit 1
}

# 1. libb64.so.0d (Debian libb64-0d)
if ! /sbin/ldconfig -p 2>/dev/null | grep -q 'libb64\.so\.0d' \
    && ! dpkg-query -W -f='${Status}' libb64-0d 2>/dev/null | grep -q 'install ok installed'; then
    if [[ "$(id -u)" != 0 ]]; then
        echo "install_perf_analyzer: perf_analyzer needs Debian's libb64-0d;" \
            "run: sudo apt-get install libb64-0d" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -qq --no-install-recommends libb64-0d >"$log" 2>&1; then
        apt-get update -qq >"$log" 2>&1 || fail "apt-get update failed"
        apt-get install -y -qq --no-install-recommends libb64-0d >"$log" 2>&1 \
            || fail "apt-get install libb64-0d failed"
    fi
fi

# 2. the binary and libcudart.so.12
if [[ -f "$STAMP" && -x "$DEST/bin/perf_analyzer" && -e "$DEST/lib/libcudart.so.12" ]]; then
    exit 0
fi
mkdir -p "$DEST/wheels" "$DEST/bin" "$DEST/lib"
rm -f "$DEST"/.installed-*

pip_download() {
    "$PYTHON" -m pip download --quiet --disable-pip-version-check --no-deps \
        --only-binary=:all: --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
        --dest "$DEST/wheels" "$1" >"$log" 2>&1 || fail "pip download $1 failed"
}
pip_download "tritonclient==$TRITONCLIENT_VERSION"
pip_download "nvidia-cuda-runtime-cu12==$CUDA_RUNTIME_VERSION"

tc_whl="$(ls "$DEST/wheels"/tritonclient-"$TRITONCLIENT_VERSION"-*.whl | head -n1)"
cr_whl="$(ls "$DEST/wheels"/nvidia_cuda_runtime_cu12-"$CUDA_RUNTIME_VERSION"-*.whl | head -n1)"

tmp="$(mktemp -d "$DEST/unpack.XXXXXX")"
trap 'rm -rf "$tmp" "$log"' EXIT
unzip_one() { # wheel, member pattern
    if command -v unzip >/dev/null 2>&1; then
        unzip -q -o "$1" "$2" -d "$tmp" >"$log" 2>&1 || fail "unzip $1 $2 failed"
    else
        "$PYTHON" - "$1" "$2" "$tmp" >"$log" 2>&1 <<'EOF' || fail "unpacking $1 failed"
import fnmatch, sys, zipfile
whl, pattern, out = sys.argv[1:]
with zipfile.ZipFile(whl) as z:
    names = [n for n in z.namelist() if fnmatch.fnmatch(n, pattern)]
    if not names:
        sys.exit(f"{pattern} not in {whl}")
    z.extractall(out, names)
EOF
    fi
}
unzip_one "$tc_whl" "tritonclient-$TRITONCLIENT_VERSION.data/data/bin/perf_analyzer"
unzip_one "$cr_whl" "nvidia/cuda_runtime/lib/libcudart.so*"

install -m 0755 "$tmp/tritonclient-$TRITONCLIENT_VERSION.data/data/bin/perf_analyzer" \
    "$DEST/bin/perf_analyzer"
cudart="$(find "$tmp" -name 'libcudart.so.12*' -type f | head -n1)"
[[ -n "$cudart" ]] || fail "libcudart.so.12 not found in $cr_whl"
install -m 0644 "$cudart" "$DEST/lib/libcudart.so.12"

if ! LD_LIBRARY_PATH="$DEST/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
    "$DEST/bin/perf_analyzer" --help >"$log" 2>&1; then
    # --help exits non-zero on some builds; what matters is that it loaded and printed usage.
    grep -q -- '--concurrency-range' "$log" || fail "perf_analyzer --help failed"
fi
touch "$STAMP"
