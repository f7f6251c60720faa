#!/usr/bin/env bash
# Fuzzes the capture contract and the recorder's parsers (fuzz/, cargo-fuzz, nightly) for a
# bounded time per target: pprof_decode, capture_read, manifest_json, memstats, target_url.
# Runs on a copy of the committed corpus (fuzz/corpus/ never grows here) and exits non-zero
# on any crash, OOM or timeout, printing the file that reproduces it. Called by
# tests/run.sh after `cargo test`; with CI=true a missing nightly toolchain fails the run,
# elsewhere it skips loudly. Idempotent.
#
#   FUZZ_SECONDS=25            seconds per target (default 25)
#   FUZZ_TARGETS="memstats"    a subset of the targets
#   FUZZ_SANITIZER=address     cargo-fuzz --sanitizer (address, none, ...)
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[tests/fuzz.sh] %s\n' "$*" >&2; }
ci=false
case "${CI:-}" in true | 1) ci=true ;; esac
missing() {
    if $ci; then
        log "FAIL: $* (required when CI=true)"
        exit 1
    fi
    log "SKIPPING FUZZING: $*"
    exit 0
}

seconds="${FUZZ_SECONDS:-25}"
targets="${FUZZ_TARGETS:-pprof_decode capture_read manifest_json memstats target_url}"
sanitizer="${FUZZ_SANITIZER:-address}"
target_dir="$(realpath -m "${CARGO_TARGET_DIR:-target}")"
work="$target_dir/fuzz-run"

cargo +nightly --version >/dev/null 2>&1 || missing "no nightly toolchain (rustup toolchain install nightly)"
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    log "installing cargo-fuzz from crates.io"
    cargo install --locked cargo-fuzz || missing "cargo install cargo-fuzz failed"
fi

max_len() {
    case "$1" in
        pprof_decode) echo 131072 ;;
        capture_read) echo 65536 ;;
        manifest_json | memstats) echo 16384 ;;
        target_url) echo 512 ;;
        *) echo 4096 ;;
    esac
}

log "building fuzz targets (nightly, sanitizer $sanitizer)"
start=$(date +%s)
for t in $targets; do
    cargo +nightly fuzz build --sanitizer "$sanitizer" --target-dir "$target_dir/fuzz" "$t"
done
log "built in $(($(date +%s) - start)) s"

rm -rf "$work"
mkdir -p "$work"
status=0
summary=()
for t in $targets; do
    corpus="$work/corpus/$t"
    artifacts="$work/artifacts/$t"
    mkdir -p "$corpus" "$artifacts"
    cp -r "fuzz/corpus/$t/." "$corpus/"
    log "fuzzing $t for $seconds s"
    t0=$(date +%s)
    rc=0
    cargo +nightly fuzz run --sanitizer "$sanitizer" --target-dir "$target_dir/fuzz" "$t" "$corpus" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -max_len="$(max_len "$t")" \
        -artifact_prefix="$artifacts/" -print_final_stats=1 >"$work/$t.log" 2>&1 || rc=$?
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work/$t.log" | grep -o '[0-9]*$' | tail -1)
    found=$(find "$artifacts" -type f | head -5)
    if [ "$rc" -ne 0 ] || [ -n "$found" ]; then
        status=1
        log "FAILED: $t (exit $rc); last lines of $work/$t.log:"
        tail -30 "$work/$t.log" >&2
        for f in $found; do log "reproduce: cargo +nightly fuzz run $t $f   ($f)"; done
    fi
    summary+=("$t: ${execs:-?} executions in $(($(date +%s) - t0)) s, exit $rc")
done
for line in "${summary[@]}"; do log "$line"; done
exit $status
