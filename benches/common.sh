# Shared helpers for the benches/*.sh scripts (sourced, not run).
# shellcheck shell=bash

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RECORDER=${RECORDER:-"$ROOT/target/release/leakscope-recorder"}
GO=${GO:-go}

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Builds the release recorder only (never the analyzer: it links DataFusion).
build_recorder() {
    log "cargo build --release -p leakscope-recorder"
    (cd "$ROOT" && cargo build --release -p leakscope-recorder) >&2
    [[ -x $RECORDER ]] || die "$RECORDER missing after build"
}

# build_service DIR: builds fixtures/go/leaky-service into DIR/leaky-service.
build_service() {
    log "$GO build fixtures/go/leaky-service"
    (cd "$ROOT/fixtures/go/leaky-service" && "$GO" build -o "$1/leaky-service" .) >&2
}

# start_service DIR [FLAGS...]: starts the service on a free port; sets SERVICE_PID and
# SERVICE_ADDR (from its first stdout line "listening on ADDR").
start_service() {
    local dir=$1
    shift
    "$dir/leaky-service" -addr 127.0.0.1:0 "$@" >"$dir/service.out" 2>"$dir/service.err" &
    SERVICE_PID=$!
    local i line=
    for i in $(seq 100); do
        line=$(head -n1 "$dir/service.out" 2>/dev/null || true)
        [[ $line == "listening on "* ]] && break
        sleep 0.1
    done
    [[ $line == "listening on "* ]] || die "service did not start: $(cat "$dir/service.err")"
    SERVICE_ADDR=${line#listening on }
    log "leaky-service PID $SERVICE_PID on $SERVICE_ADDR"
}

stop_service() {
    if [[ -n ${SERVICE_PID:-} ]] && kill -0 "$SERVICE_PID" 2>/dev/null; then
        kill "$SERVICE_PID" 2>/dev/null || true
        wait "$SERVICE_PID" 2>/dev/null || true
    fi
    SERVICE_PID=
}

# now: wall clock in seconds with ns.
now() { date +%s.%N; }

machine_line() {
    printf "machine: %s cores (nproc), %s, kernel %s, %s, %s; loadavg %s\n" \
        "$(nproc)" "$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')" "$(uname -r)" \
        "$(rustc -V)" "$("$GO" version | awk '{print $3}')" "$(cut -d" " -f1-3 /proc/loadavg)"
}
