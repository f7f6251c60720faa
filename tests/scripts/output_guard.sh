#!/usr/bin/env bash
# Regression guard for changes meant to be exact (speed-ups, refactors): writes every
# user-visible output of one `leakscope` build over a fixed set of captures, so that two
# builds' outputs can be compared byte for byte with `diff -r`.
#
#   tests/scripts/output_guard.sh BIN_DIR OUT_DIR      # e.g. BIN_DIR=target/release
#   diff -r OUT_BEFORE OUT_AFTER                        # nothing printed: nothing changed
#
# The captures are the bundled demo capture and synthetic ones from `leakscope-synth`
# (BIN_DIR/leakscope-synth): short runs (60-120 profiles, judged point by point), long runs
# (300-10,000 profiles, judged on bucket medians above fit::REDUCE_ABOVE = 256 points),
# restarts, and a series length just above the reduction threshold. They are generated once
# into CAPS (default target/guard-captures) and reused, so both builds read the same files.
# Outputs: `rank` by stack, site and function in JSON and text, `rank --first`, `check`,
# `report` (HTML), `export-pprof` and a `sql` query; each command's exit status too.
# Capture and output paths are replaced by placeholders, so OUT_DIRs compare as they are.
set -euo pipefail
cd "$(dirname "$0")/../.."

[ $# -eq 2 ] || { echo "usage: $0 BIN_DIR OUT_DIR" >&2; exit 2; }
BIN=$(realpath "$1")
OUT=$2
CAPS=${CAPS:-target/guard-captures}
LEAKSCOPE=$BIN/leakscope
SYNTH=$BIN/leakscope-synth
[ -x "$LEAKSCOPE" ] && [ -x "$SYNTH" ] || { echo "$0: missing $LEAKSCOPE or $SYNTH" >&2; exit 2; }
mkdir -p "$CAPS" "$OUT"
CAPS=$(realpath "$CAPS")
OUT=$(realpath "$OUT")

# name: leakscope-synth arguments
SYNTH_CAPTURES=(
    "p60-s200-seed1: --profiles 60 --stacks 200 --seed 1"
    "p60-s200-seed8: --profiles 60 --stacks 200 --seed 8"
    "p120-s200-seed3-runs2: --profiles 120 --stacks 200 --seed 3 --runs 2"
    "p257-s300-seed10: --profiles 257 --stacks 300 --seed 10"
    "p300-s500-seed2: --profiles 300 --stacks 500 --seed 2"
    "p1000-s300-seed4: --profiles 1000 --stacks 300 --seed 4"
    "p2000-s200-seed5-runs2: --profiles 2000 --stacks 200 --seed 5 --runs 2"
    "p3000-s100-seed6-runs3: --profiles 3000 --stacks 100 --seed 6 --runs 3"
    "p400-s400-seed7-every1s: --profiles 400 --stacks 400 --seed 7 --interval-secs 1"
    "p5000-s200-seed11-runs2: --profiles 5000 --stacks 200 --seed 11 --runs 2"
    "p10000-s100-seed9: --profiles 10000 --stacks 100 --seed 9"
)

captures=(demo)
for entry in "${SYNTH_CAPTURES[@]}"; do
    name=${entry%%:*}
    captures+=("$name")
    if [ ! -f "$CAPS/$name.done" ]; then
        rm -rf "${CAPS:?}/$name"
        # shellcheck disable=SC2086 # the arguments are words
        "$SYNTH" --out "$CAPS/$name" ${entry#*:} >/dev/null
        touch "$CAPS/$name.done"
    fi
done

# Runs one command, keeping its stdout, stderr and exit status under OUT/NAME.*.
run() {
    local name=$1
    shift
    local status=0
    "$@" >"$OUT/$name.out" 2>"$OUT/$name.err" || status=$?
    echo "$status" >"$OUT/$name.status"
    sed -i -e "s#$CAPS#<CAPS>#g" -e "s#$OUT#<OUT>#g" -e "s#$PWD#<REPO>#g" \
        "$OUT/$name.out" "$OUT/$name.err"
}

for name in "${captures[@]}"; do
    cap=$CAPS/$name
    [ "$name" = demo ] && cap=$PWD/fixtures/captures/demo
    for by in stack site function; do
        run "$name.rank-$by.json" "$LEAKSCOPE" rank "$cap" --by "$by" --format json
        run "$name.rank-$by.txt" "$LEAKSCOPE" rank "$cap" --by "$by" --top 50
    done
    run "$name.rank-first.json" "$LEAKSCOPE" rank "$cap" --by stack --first 2m --format json
    run "$name.check" "$LEAKSCOPE" check "$cap"
    run "$name.report" "$LEAKSCOPE" report "$cap" -o "$OUT/$name.report.html"
    [ -f "$OUT/$name.report.html" ] && sed -i -e "s#$CAPS#<CAPS>#g" -e "s#$OUT#<OUT>#g" -e "s#$PWD#<REPO>#g" "$OUT/$name.report.html"
    run "$name.export" "$LEAKSCOPE" export-pprof "$cap" -o "$OUT/$name.pb.gz"
    run "$name.sql" "$LEAKSCOPE" sql "$cap" \
        "SELECT stack_id, SUM(inuse_bytes) AS b FROM samples GROUP BY stack_id ORDER BY b DESC, stack_id LIMIT 20"
done
echo "$0: $(find "$OUT" -type f | wc -l) files in $OUT" >&2
