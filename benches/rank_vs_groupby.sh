#!/usr/bin/env bash
# Benchmark: `leakscope rank` against a bare DataFusion `GROUP BY stack_id` over the same
# synthetic capture, and against DuckDB (a peer engine) running the same GROUP BYs over the
# same committed Parquet files (docs/performance.md, "Analyzer").
#
#   benches/rank_vs_groupby.sh                      # 10000 profiles x 10000 stacks = 100M rows
#   PROFILES=500 STACKS=1000 benches/rank_vs_groupby.sh
#
# Environment:
#   PROFILES, STACKS   capture size (default 10000 x 10000)
#   SEED, RUNS         generator seed (1) and runs/restarts (1)
#   ROTATE_SIZE        generator segment-set size (default 64MiB, as `import`); every set
#                      repeats the stacks its samples use, so this sets how often they repeat
#   WORKDIR            where captures and logs go (default target/bench/analyzer)
#   BUILD=0            use the existing binaries instead of building them
#   PROFILE_DIR        release (default) or debug: which target/ directory's binaries to use
#   REGEN=1            regenerate the capture even if it exists
#   REPEAT             runs of each measurement; the fastest counts (default 1)
#   CAPTURE            an existing capture directory to measure instead of generating one
#                      (e.g. /work/main/target/bench/analyzer/synth-10000x10000-s1-r1); it is
#                      only read. Logs still go to WORKDIR.
#   DUCKDB=0           skip the DuckDB peer (default 1: installs PyPI `duckdb` when missing)
#   DUCKDB_THREADS     DuckDB's threads (default 2, the machine's cores)
#   REPORT=0           skip `leakscope report` (default 1: measured against rank --by site,
#                      the ranking the report shows)
#   RESULTS            a file to append one tab-separated line per step to (rows, step,
#                      wall s, CPU s, peak RSS KiB, git, UTC time), for benches/scale_chart.py
#
# Targets (issue #14): rank (each --by) within 2x the GROUP BY's wall time; peak RSS within
# 1 GiB up to 100M rows and 8 GiB beyond (RSS_TARGET_MIB overrides); report within rank
# --by site + 20%. The exit status is 1 when a target is missed. CPU time is shown too: it
# is less disturbed than wall time when other work shares the machine.
set -euo pipefail
cd "$(dirname "$0")/.."

PROFILES=${PROFILES:-10000}
STACKS=${STACKS:-10000}
SEED=${SEED:-1}
RUNS=${RUNS:-1}
ROTATE_SIZE=${ROTATE_SIZE:-64MiB}
WORKDIR=${WORKDIR:-target/bench/analyzer}
PROFILE_DIR=${PROFILE_DIR:-release}
BUILD=${BUILD:-1}
REGEN=${REGEN:-0}
REPEAT=${REPEAT:-1}
REPORT=${REPORT:-1}
RESULTS=${RESULTS:-}

log() { printf '[rank_vs_groupby] %s\n' "$*" >&2; }

if [ ! -x /usr/bin/time ]; then
    log "installing GNU time"
    sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq time >/dev/null
fi

mkdir -p "$WORKDIR"
if [ "$BUILD" = 1 ]; then
    flag=""; [ "$PROFILE_DIR" = release ] && flag="--release"
    log "building leakscope and leakscope-synth ($PROFILE_DIR; a cold release build takes 16-26 min on 2 cores)"
    cargo build $flag -p leakscope -p leakscope-tests --bin leakscope --bin leakscope-synth
fi
LEAKSCOPE=target/$PROFILE_DIR/leakscope
SYNTH=target/$PROFILE_DIR/leakscope-synth
[ -x "$LEAKSCOPE" ] && [ -x "$SYNTH" ] || { log "missing $LEAKSCOPE or $SYNTH (BUILD=1 builds them)"; exit 2; }

DUCKDB=${DUCKDB:-1}
DUCKDB_THREADS=${DUCKDB_THREADS:-2}
if [ "$DUCKDB" = 1 ] && ! python3 -c 'import duckdb' 2>/dev/null; then
    log "installing PyPI duckdb"
    python3 -m pip install -q duckdb || python3 -m pip install -q --break-system-packages duckdb
fi

CAP=$WORKDIR/synth-${PROFILES}x${STACKS}-s${SEED}-r${RUNS}
[ "$ROTATE_SIZE" != 64MiB ] && CAP=$CAP-rot$ROTATE_SIZE
if [ -n "${CAPTURE:-}" ]; then
    CAP=${CAPTURE%/}
    [ -f "$CAP/manifest.json" ] || { log "CAPTURE=$CAP has no manifest.json"; exit 2; }
    log "using CAPTURE=$CAP (read only; PROFILES x STACKS are taken as given for the row count)"
elif [ "$REGEN" = 1 ] || [ ! -f "$CAP/manifest.json" ] || [ ! -f "$CAP.done" ]; then
    rm -rf "$CAP" "$CAP.done" "$CAP.ground-truth.json" "$CAP.synth.time"
    log "generating $CAP"
    /usr/bin/time -f '%e %M' -o "$CAP.synth.time" \
        "$SYNTH" --out "$CAP" --profiles "$PROFILES" --stacks "$STACKS" --seed "$SEED" --runs "$RUNS" \
        --rotate-size "$ROTATE_SIZE"
    touch "$CAP.done"
    read -r gen_s gen_kb < "$CAP.synth.time"
    log "generated in ${gen_s} s, peak RSS $((gen_kb / 1024)) MiB"
else
    log "reusing $CAP (REGEN=1 to regenerate)"
fi
log "capture: $(du -sh "$CAP" | cut -f1), $(find "$CAP" -name '*.parquet' | wc -l) files"

# Warm the page cache so the first measurement does not pay for cold reads alone.
cat "$CAP"/*/*/*.parquet > /dev/null

GROUPBY_SQL="SELECT stack_id, SUM(inuse_bytes) FROM samples GROUP BY stack_id"
declare -A WALL CPU RSS QUERY
TOTAL_CPU=0
cpu_busy() { # jiffies spent by everything on the machine (user+nice+system+irq+softirq+steal)
    awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat
}
measure() { # name, command...: best (lowest wall) of $REPEAT runs
    local name=$1; shift
    log "$name: $*"
    local r wall kb cpu
    for r in $(seq "$REPEAT"); do
        /usr/bin/time -v -o "$WORKDIR/$name.time" "$@" > /dev/null 2> "$WORKDIR/$name.stderr" || {
            log "$name failed:"; cat "$WORKDIR/$name.stderr" >&2; tail -25 "$WORKDIR/$name.time" >&2; exit 1; }
        # h:mm:ss or m:ss.ss -> seconds
        wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$WORKDIR/$name.time" |
            awk -F: '{ s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; print s }')
        cpu=$(awk -F': ' '/User time|System time/ { s += $2 } END { print s }' "$WORKDIR/$name.time")
        kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$WORKDIR/$name.time")
        TOTAL_CPU=$(echo "$TOTAL_CPU $cpu" | awk '{ print $1 + $2 }')
        log "$name run $r: ${wall} s wall, ${cpu} s CPU, peak RSS $((kb / 1024)) MiB"
        if [ -z "${WALL[$name]:-}" ] || awk "BEGIN { exit !($wall < ${WALL[$name]}) }"; then
            WALL[$name]=$wall; CPU[$name]=$cpu
        fi
        if [ -z "${RSS[$name]:-}" ] || [ "$kb" -gt "${RSS[$name]}" ]; then RSS[$name]=$kb; fi
        # DuckDB's time in the query alone (without Python's and DuckDB's start): the fastest.
        q=$(sed -n 's/.* query \([0-9.]*\) s$/\1/p' "$WORKDIR/$name.stderr" | tail -1)
        if [ -n "$q" ] && { [ -z "${QUERY[$name]:-}" ] || awk "BEGIN { exit !($q < ${QUERY[$name]}) }"; }; then
            QUERY[$name]=$q
        fi
    done
}

hz=$(getconf CLK_TCK)
busy0=$(cpu_busy); t0=$(date +%s.%N)
measure groupby "$LEAKSCOPE" sql "$CAP" "$GROUPBY_SQL" --format csv
measure rank_stack "$LEAKSCOPE" rank "$CAP" --by stack --format json
measure rank_site "$LEAKSCOPE" rank "$CAP" --by site --format json
[ "$REPORT" = 1 ] && measure report "$LEAKSCOPE" report "$CAP" -o "$WORKDIR/report.html"
if [ "$DUCKDB" = 1 ]; then
    # Same committed files as the analyzer (benches/duckdb_groupby.py lists them the way
    # capture/src/segment.rs does); the sums are consumed so DuckDB cannot drop them.
    measure duckdb_stack python3 benches/duckdb_groupby.py "$CAP" stack "$DUCKDB_THREADS"
    measure duckdb_matrix python3 benches/duckdb_groupby.py "$CAP" matrix "$DUCKDB_THREADS"
fi
busy1=$(cpu_busy); t1=$(date +%s.%N)

rows=$((PROFILES * STACKS))
steps="groupby rank_stack rank_site"
[ "$REPORT" = 1 ] && steps="$steps report"
[ "$DUCKDB" = 1 ] && steps="$steps duckdb_stack duckdb_matrix"
ratio() { echo "$1 $2" | awk '{ if ($2 > 0) printf "%.2fx", $1 / $2; else print "-" }'; }
printf '\n%-14s %9s %9s %9s %11s %11s %11s %11s\n' "step" "wall (s)" "CPU (s)" "RSS (MiB)" "wall/ls GB" "CPU/ls GB" "wall/dd GB" "wall/dd mx"
for n in $steps; do
    dd_gb=-; dd_mx=-
    if [ "$DUCKDB" = 1 ]; then
        dd_gb=$(ratio "${WALL[$n]}" "${WALL[duckdb_stack]}"); dd_mx=$(ratio "${WALL[$n]}" "${WALL[duckdb_matrix]}")
    fi
    printf '%-14s %9.2f %9.2f %9d %11s %11s %11s %11s\n' "$n" "${WALL[$n]}" "${CPU[$n]}" $((RSS[$n] / 1024)) \
        "$(ratio "${WALL[$n]}" "${WALL[groupby]}")" "$(ratio "${CPU[$n]}" "${CPU[groupby]}")" "$dd_gb" "$dd_mx"
done
echo "(ls GB = leakscope sql GROUP BY stack_id; dd GB = DuckDB GROUP BY stack_id; dd mx = DuckDB GROUP BY stack_id, profile_id)"
if [ "$DUCKDB" = 1 ]; then
    for n in duckdb_stack duckdb_matrix; do
        echo "$n: fastest query alone ${QUERY[$n]} s (wall includes Python + DuckDB start); last run: $(tail -1 "$WORKDIR/$n.stderr"); result $(python3 benches/duckdb_groupby.py "$CAP" "${n#duckdb_}" "$DUCKDB_THREADS" 2>/dev/null) (groups, sum)"
    done
    echo "wall ratios to DuckDB's query alone: rank_stack $(ratio "${WALL[rank_stack]}" "${QUERY[duckdb_stack]}") / $(ratio "${WALL[rank_stack]}" "${QUERY[duckdb_matrix]}"), rank_site $(ratio "${WALL[rank_site]}" "${QUERY[duckdb_stack]}") / $(ratio "${WALL[rank_site]}" "${QUERY[duckdb_matrix]}"), ls GROUP BY $(ratio "${WALL[groupby]}" "${QUERY[duckdb_stack]}") (vs GROUP BY stack_id / vs matrix)"
    echo "CPU ratios to DuckDB: rank_stack $(ratio "${CPU[rank_stack]}" "${CPU[duckdb_stack]}") / $(ratio "${CPU[rank_stack]}" "${CPU[duckdb_matrix]}"), rank_site $(ratio "${CPU[rank_site]}" "${CPU[duckdb_stack]}") / $(ratio "${CPU[rank_site]}" "${CPU[duckdb_matrix]}"), ls GROUP BY $(ratio "${CPU[groupby]}" "${CPU[duckdb_stack]}") (vs GROUP BY stack_id / vs matrix)"
fi
echo
echo "capture: $CAP ($PROFILES profiles x $STACKS stacks = $rows sample rows, $RUNS run(s), seed $SEED, segment sets of $ROTATE_SIZE: $(find "$CAP/samples" -name '*.parquet' | wc -l))"
if [ -f "$CAP.synth.time" ]; then
    read -r gen_s gen_kb < "$CAP.synth.time"
    echo "generator (last run): $gen_s s, peak RSS $((gen_kb / 1024)) MiB ($(echo "$rows $gen_s" | awk '{ printf "%.2f", $1 / $2 / 1e6 }') M rows/s)"
fi
# Other work on the machine during the measurements: CPU seconds used by everything else
# (all runs, all repeats), per second of wall time. 0 means the machine was otherwise idle.
echo "other CPU load during the measurements: $(echo "$busy0 $busy1 $hz $t0 $t1 $TOTAL_CPU" |
    awk '{ other = ($2 - $1) / $3 - $6; if (other < 0) other = 0; printf "%.2f cores (busy %.0f s of %.0f s wall)", other / ($5 - $4), ($2 - $1) / $3, $5 - $4 }'); load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo) RAM, $(rustc -V); leakscope built $(date -u -r "$LEAKSCOPE" '+%Y-%m-%d %H:%M UTC'), git $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- analyzer capture 2>/dev/null || echo ' (analyzer/capture modified)')"
if [ -n "$RESULTS" ]; then
    stamp=$(date -u '+%Y-%m-%dT%H:%MZ'); rev=$(git rev-parse --short HEAD)
    for n in $steps; do
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$rows" "$n" "${WALL[$n]}" "${CPU[$n]}" "${RSS[$n]}" "$rev" "$stamp" >> "$RESULTS"
    done
    log "appended $(echo $steps | wc -w) lines to $RESULTS"
fi
# Issue #14: 1 GiB at 100M rows, 8 GiB at 1 billion on this 24 GiB machine.
RSS_TARGET_MIB=${RSS_TARGET_MIB:-$([ "$rows" -le 100000000 ] && echo 1024 || echo 8192)}
fail=0
for n in rank_stack rank_site; do
    ratio=$(echo "${WALL[$n]} ${WALL[groupby]}" | awk '{ printf "%.2f", $1 / $2 }')
    ok_t=$(echo "$ratio" | awk '{ print ($1 <= 2.0) ? "met" : "MISSED" }')
    ok_m=$(echo "${RSS[$n]} $RSS_TARGET_MIB" | awk '{ print ($1 <= $2 * 1024) ? "met" : "MISSED" }')
    echo "$n: ${ratio}x GROUP BY (target <= 2x: $ok_t), peak RSS $((RSS[$n] / 1024)) MiB (target <= $RSS_TARGET_MIB MiB: $ok_m)"
    [ "$ok_t" = met ] && [ "$ok_m" = met ] || fail=1
done
if [ "$REPORT" = 1 ]; then
    ratio=$(echo "${WALL[report]} ${WALL[rank_site]}" | awk '{ printf "%.2f", $1 / $2 }')
    cratio=$(echo "${CPU[report]} ${CPU[rank_site]}" | awk '{ printf "%.2f", $1 / $2 }')
    ok=$(echo "$ratio" | awk '{ print ($1 <= 1.2) ? "met" : "MISSED" }')
    echo "report: ${ratio}x rank --by site in wall, ${cratio}x in CPU (target <= 1.2x: $ok), peak RSS $((RSS[report] / 1024)) MiB"
    [ "$ok" = met ] || fail=1
fi
exit $fail
