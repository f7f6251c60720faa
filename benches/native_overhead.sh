#!/usr/bin/env bash
# Native tracing overhead: what `leakscope-recorder record --native` costs a malloc/free-heavy
# C program (fixtures/c/alloc_bench.c), against the same program untraced and traced by an
# equivalent bpftrace script (docs/performance.md, "Native tracing overhead").
#
# Usage (from the repo root, as root):   benches/native_overhead.sh
# Environment:
#   ITERATIONS=200000  loop iterations per thread (1.375 malloc/free pairs each, see alloc_bench.c)
#   THREADS=1          benchmark threads (the recorder's reader thread needs a core too)
#   SAMPLE=64          --native-sample of the sampled run
#   SAMPLE_BYTES=512KiB  --native-sample-bytes of the size-sampled run
#   FLOOR=1            0: skip the bpftrace runs with empty probes (the uprobe floor)
#   INTERVAL=1s        recorder --interval (also how often it writes native_events rows)
#   REPEAT=3           rounds; each round runs every mode once (interleaved, so that a change
#                      of machine load hits all modes alike); the fastest run of a mode counts
#   BUILD=1            0: use target/release/leakscope-recorder as it is
#   BPF_STATS=1        0: skip the extra run of each tracer with kernel.bpf_stats_enabled=1
#                      that splits the cost into eBPF program time and probe (trap) time
#   WORK=target/bench/native   scratch directory (emptied on each run)
# Needs root (eBPF, uprobes), cc, python3 with pyarrow (to read native_counters) and
# bpftrace (installed with apt-get when missing).
#
# Runs: untraced; `record --pid PID --native` (every allocation traced, default options);
# `record --native --native-sample $SAMPLE`; `record --native --native-sample-bytes
# $SAMPLE_BYTES`; bpftrace (same map work per call: size stashed by thread at entry,
# address -> (size, user stack) at return, deleted at free/realloc); and, for comparison,
# full tracing with LEAKSCOPE_NATIVE_ENTRY_SKIP=0: free probed at its first instruction, as
# bpftrace does, instead of past its leading `test` (maps.rs, entry_skip), so that the
# kernel single-steps it on every call.
# The floor (FLOOR=1): bpftrace with EMPTY probes (only the PID filter) on the same
# functions, what any uprobe-based tracer pays for its traps: empty_all (entry and return
# of malloc, calloc, realloc, and free's entry: at its first instruction, single-stepped,
# since bpftrace 0.17 cannot probe at an offset), empty_alloc (the same without free) and
# empty_entry (the entries of malloc, calloc and realloc only: one emulated trap, the kind
# the recorder's free probe at +3 takes). The floor for the recorder's probe placement is
# estimated as empty_alloc + empty_entry.
# The benchmark waits (SIGUSR1) until the tracer has attached, then times its own loop.
# Cost per pair = (traced - untraced wall time) / pairs.
# Targets (from the project issue): leakscope full-tracing cost per pair <= 0.5x bpftrace's;
# sampled-mode slowdown <= 10%; no event lost in full tracing. Exit status 1 when one is
# missed.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

ITERATIONS=${ITERATIONS:-200000}
THREADS=${THREADS:-1}
SAMPLE=${SAMPLE:-64}
SAMPLE_BYTES=${SAMPLE_BYTES:-512KiB}
FLOOR=${FLOOR:-1}
INTERVAL=${INTERVAL:-1s}
REPEAT=${REPEAT:-3}
BUILD=${BUILD:-1}
BPF_STATS=${BPF_STATS:-1}
WORK=${WORK:-$ROOT/target/bench/native}

[[ $(id -u) == 0 ]] || die "needs root (eBPF uprobes)"
rm -rf "$WORK"
mkdir -p "$WORK"
BENCH_PID= TRACER_PID=
STATS_WAS=$(sysctl -n kernel.bpf_stats_enabled)
cleanup() {
    for p in $BENCH_PID $TRACER_PID; do
        kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null
    done
    sysctl -qw kernel.bpf_stats_enabled="$STATS_WAS"
    return 0
}
trap cleanup EXIT

if [[ $BUILD == 1 ]]; then build_recorder; fi
[[ -x $RECORDER ]] || die "$RECORDER missing (run with BUILD=1)"
if ! command -v bpftrace >/dev/null; then
    log "installing bpftrace"
    apt-get install -y bpftrace >&2 || { apt-get update >&2 && apt-get install -y bpftrace >&2; } ||
        die "apt-get install bpftrace failed"
fi
python3 -c 'import pyarrow.dataset' 2>/dev/null || die "python3 with pyarrow is needed to read native_counters"
BENCH="$WORK/alloc_bench"
log "cc -O2 -g -fno-omit-frame-pointer fixtures/c/alloc_bench.c"
cc -O2 -g -fno-omit-frame-pointer -pthread -o "$BENCH" "$ROOT/fixtures/c/alloc_bench.c"
LIBC=$(ldd "$BENCH" | awk '$1 ~ /^libc\.so/ {print $3}')
LIBC=$(readlink -f "$LIBC")
[[ -f $LIBC ]] || die "libc of $BENCH not found"

# bpftrace doing the recorder's per-call map work (no counters, no events to user space).
# bpftrace 0.17 attaches uprobes to every process mapping libc (-p scopes only USDT probes),
# so the programs check the PID ($1) like the recorder's do.
cat >"$WORK/bpftrace.bt" <<EOF
BEGIN { printf("attached\n"); }
uprobe:$LIBC:malloc /pid == \$1/ { @size[tid] = arg0; }
uprobe:$LIBC:calloc /pid == \$1/ { @size[tid] = arg0 * arg1; }
uprobe:$LIBC:realloc /pid == \$1/ { delete(@allocs[arg0]); @size[tid] = arg1; }
uretprobe:$LIBC:malloc, uretprobe:$LIBC:calloc, uretprobe:$LIBC:realloc
/pid == \$1 && @size[tid]/
{
    @allocs[retval] = (@size[tid], ustack);
    delete(@size[tid]);
}
uprobe:$LIBC:free /pid == \$1/ { delete(@allocs[arg0]); }
END { clear(@allocs); clear(@size); }
EOF
# The floor: the same probes with nothing in them but the PID filter.
cat >"$WORK/empty_alloc.bt" <<EOF
BEGIN { printf("attached\n"); }
uprobe:$LIBC:malloc /pid == \$1/ {}
uprobe:$LIBC:calloc /pid == \$1/ {}
uprobe:$LIBC:realloc /pid == \$1/ {}
uretprobe:$LIBC:malloc /pid == \$1/ {}
uretprobe:$LIBC:calloc /pid == \$1/ {}
uretprobe:$LIBC:realloc /pid == \$1/ {}
EOF
{ cat "$WORK/empty_alloc.bt"; echo "uprobe:$LIBC:free /pid == \$1/ {}"; } >"$WORK/empty_all.bt"
grep -v uretprobe "$WORK/empty_alloc.bt" >"$WORK/empty_entry.bt"

# field NAME LINE: the value of NAME=value in LINE.
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" $2"; }

# ticks PID: utime + stime of PID in clock ticks.
ticks() {
    local stat
    stat=$(<"/proc/$1/stat") 2>/dev/null || { echo 0; return; }
    read -r -a f <<<"${stat##*) }"
    echo $((f[11] + f[12]))
}

# start_bench DIR: starts the benchmark waiting for SIGUSR1; sets BENCH_PID.
start_bench() {
    "$BENCH" "$ITERATIONS" "$THREADS" --wait >"$1/bench.out" 2>"$1/bench.err" &
    BENCH_PID=$!
    local i
    for i in $(seq 100); do
        grep -q '^ready ' "$1/bench.out" 2>/dev/null && return 0
        sleep 0.05
    done
    die "alloc_bench did not start: $(cat "$1/bench.err")"
}

# wait_line FILE PATTERN PID: waits until FILE has a line matching PATTERN (60 s), dies when
# PID exits first.
wait_line() {
    local i
    for i in $(seq 600); do
        grep -q -- "$2" "$1" 2>/dev/null && return 0
        kill -0 "$3" 2>/dev/null || die "tracer exited before attaching: $(tail -5 "$1")"
        sleep 0.1
    done
    die "tracer did not attach within 60 s: $(tail -5 "$1")"
}

# go_and_wait DIR: releases the benchmark and waits for it; sets RESULT to its result line.
go_and_wait() {
    kill -USR1 "$BENCH_PID"
    wait "$BENCH_PID" || die "alloc_bench failed: $(cat "$1/bench.err")"
    BENCH_PID=
    RESULT=$(grep '^result ' "$1/bench.out") || die "alloc_bench printed no result"
}

# counters CAPTURE: the last native_counters row as NAME=VALUE pairs.
counters() {
    python3 - "$1" <<'EOF'
import sys
import pyarrow.dataset as ds
import pyarrow as pa
t = ds.dataset(sys.argv[1] + "/native_counters", format="parquet", partitioning="hive").to_table()
if t.num_rows == 0:
    sys.exit("no native_counters rows")
t = t.set_column(t.schema.get_field_index("time"), "time", t.column("time").cast(pa.int64()))
row = max(t.to_pylist(), key=lambda r: r["time"])
print(" ".join(f"{k}={v}" for k, v in row.items() if isinstance(v, int) and k != "time"))
EOF
}

# bpf_ns PID: run_time_ns summed over the eBPF programs PID holds open (with bpf stats on),
# and the program runs, as "ns runs".
bpf_ns() {
    local f t=0 n=0 v
    for f in /proc/"$1"/fdinfo/*; do
        v=$(awk '/^run_time_ns:/ {t = $2} /^run_cnt:/ {n = $2} END {if (n != "") print t, n}' "$f" 2>/dev/null) || continue
        [[ -n $v ]] || continue
        t=$((t + ${v% *})) n=$((n + ${v#* }))
    done
    echo "$t $n"
}

# run_once MODE N: one run; sets LINE to "elapsed_s=.. pairs=.. tracer_cpu_s=.. [counters]".
run_once() {
    local mode=$1 n=$2 dir="$WORK/$1-$2" result cpu0 cpu1 bpf_t bpf_n
    mkdir -p "$dir"
    case $mode in
    untraced)
        "$BENCH" "$ITERATIONS" "$THREADS" >"$dir/bench.out" 2>"$dir/bench.err" ||
            die "alloc_bench failed: $(cat "$dir/bench.err")"
        result=$(grep '^result ' "$dir/bench.out")
        LINE="elapsed_s=$(field elapsed_s "$result") pairs=$(field pairs "$result") tracer_cpu_s=0"
        ;;
    full | sampled | sampled_bytes | full_at_start)
        local extra=() skip=1
        [[ $mode == sampled ]] && extra=(--native-sample "$SAMPLE")
        [[ $mode == sampled_bytes ]] && extra=(--native-sample-bytes "$SAMPLE_BYTES")
        [[ $mode == full_at_start ]] && skip=0
        start_bench "$dir"
        LEAKSCOPE_NATIVE_ENTRY_SKIP=$skip "$RECORDER" record --pid "$BENCH_PID" --native "${extra[@]}" --out "$dir/capture" \
            --interval "$INTERVAL" 2>"$dir/recorder.log" &
        TRACER_PID=$!
        wait_line "$dir/recorder.log" "recording pid:$BENCH_PID" "$TRACER_PID"
        cpu0=$(ticks "$TRACER_PID")
        go_and_wait "$dir"
        result=$RESULT
        read -r bpf_t bpf_n < <(bpf_ns "$TRACER_PID")
        # Let the reader drain what the kernel buffered, then stop (a final snapshot is written).
        sleep 0.5
        cpu1=$(ticks "$TRACER_PID")
        kill -INT "$TRACER_PID"
        wait "$TRACER_PID" || die "recorder failed: $(tail -5 "$dir/recorder.log")"
        TRACER_PID=
        local summary c
        summary=$(grep -o 'native: [0-9]* snapshots, [0-9]* events lost or untracked' "$dir/recorder.log" | tail -1)
        [[ -n $summary ]] || die "no native summary in $dir/recorder.log"
        c=$(counters "$dir/capture") || die "reading native_counters of $dir/capture failed"
        LINE="elapsed_s=$(field elapsed_s "$result") pairs=$(field pairs "$result")"
        LINE+=" tracer_cpu_s=$(awk -v a="$cpu0" -v b="$cpu1" -v hz="$(getconf CLK_TCK)" 'BEGIN{printf "%.2f", (b-a)/hz}')"
        LINE+=" bpf_ns=$bpf_t bpf_runs=$bpf_n summary_losses=$(awk '{print $4}' <<<"$summary") $c"
        ;;
    bpftrace | empty_all | empty_alloc | empty_entry)
        start_bench "$dir"
        bpftrace -p "$BENCH_PID" "$WORK/$mode.bt" "$BENCH_PID" >"$dir/bpftrace.log" 2>&1 &
        TRACER_PID=$!
        # BEGIN's output appears once every probe is attached.
        wait_line "$dir/bpftrace.log" '^attached' "$TRACER_PID"
        cpu0=$(ticks "$TRACER_PID")
        go_and_wait "$dir"
        result=$RESULT
        read -r bpf_t bpf_n < <(bpf_ns "$TRACER_PID")
        cpu1=$(ticks "$TRACER_PID")
        kill -INT "$TRACER_PID"
        wait "$TRACER_PID" || true # exits non-zero when detaching from the exited process
        TRACER_PID=
        LINE="elapsed_s=$(field elapsed_s "$result") pairs=$(field pairs "$result")"
        LINE+=" tracer_cpu_s=$(awk -v a="$cpu0" -v b="$cpu1" -v hz="$(getconf CLK_TCK)" 'BEGIN{printf "%.2f", (b-a)/hz}')"
        LINE+=" bpf_ns=$bpf_t bpf_runs=$bpf_n"
        ;;
    esac
}

# keep MODE ROUND: runs MODE once, keeps the line in $WORK/MODE.best when it is the fastest.
keep() {
    local mode=$1 e beste=
    run_once "$mode" "$2"
    e=$(field elapsed_s "$LINE")
    log "$mode run $2: $(cut -c1-160 <<<"$LINE")"
    [[ -f $WORK/$mode.best ]] && beste=$(field elapsed_s "$(<"$WORK/$mode.best")")
    if [[ -z $beste ]] || awk -v a="$e" -v b="$beste" 'BEGIN{exit !(a < b)}'; then
        echo "$LINE" >"$WORK/$mode.best"
    fi
}

MODES=(untraced full sampled sampled_bytes bpftrace full_at_start)
[[ $FLOOR == 1 ]] && MODES+=(empty_all empty_alloc empty_entry)
LOAD_BEFORE=$(cut -d" " -f1-3 /proc/loadavg)
log "loadavg before measuring: $LOAD_BEFORE"
log "alloc_bench $ITERATIONS iterations x $THREADS thread(s); libc $LIBC; REPEAT=$REPEAT; modes ${MODES[*]}"
for round in $(seq "$REPEAT"); do
    log "round $round of $REPEAT (loadavg $(cut -d" " -f1-3 /proc/loadavg))"
    for mode in "${MODES[@]}"; do
        keep "$mode" "$round"
    done
done
LOAD_AFTER=$(cut -d" " -f1-3 /proc/loadavg)
if [[ $BPF_STATS == 1 ]]; then
    # One more run of each tracer with eBPF run-time statistics (they slow each program run
    # a little, so the timed runs above are made without them).
    sysctl -qw kernel.bpf_stats_enabled=1
    for mode in full sampled sampled_bytes bpftrace full_at_start; do
        run_once "$mode" stats
        log "$mode with bpf stats: $(cut -c1-160 <<<"$LINE")"
        echo "$LINE" >"$WORK/$mode.stats"
    done
    sysctl -qw kernel.bpf_stats_enabled="$STATS_WAS"
fi

# --- report -------------------------------------------------------------------------
U=$(<"$WORK/untraced.best")
pairs=$(field pairs "$U")
for m in "${MODES[@]}"; do
    [[ $(field pairs "$(<"$WORK/$m.best")") == "$pairs" ]] || die "runs did different work: $m"
done
ut=$(field elapsed_s "$U")
# num NAME LINE: the value of NAME in LINE, 0 when absent.
num() { local v; v=$(field "$1" "$2"); echo "${v:-0}"; }
# Per mode: wall time, events sent (alloc + matched free), losses, events not written.
declare -A wall events losses notw cpu has
for m in "${MODES[@]:1}"; do
    l=$(<"$WORK/$m.best")
    wall[$m]=$(field elapsed_s "$l")
    cpu[$m]=$(field tracer_cpu_s "$l")
    has[$m]=0
    [[ $l == *alloc_events=* ]] && has[$m]=1
    events[$m]=$(($(num alloc_events "$l") + $(num free_matched "$l")))
    losses[$m]=$(($(num lost_alloc_events "$l") + $(num lost_free_events "$l") + $(num table_full "$l") + $(num stash_full "$l") + $(num bad_events "$l")))
    notw[$m]=$(num events_not_written "$l")
done
cost() { awk -v t="${wall[$1]}" -v ut="$ut" -v p="$pairs" 'BEGIN{printf "%.1f", (t - ut) * 1e9 / p}'; }
row() { # NAME MODE
    local m=$2
    awk -v name="$1" -v t="${wall[$m]}" -v ut="$ut" -v ns="$(cost "$m")" -v ev="${events[$m]}" \
        -v losses="${losses[$m]}" -v notw="${notw[$m]}" -v cpu="${cpu[$m]}" -v has="${has[$m]}" '
    BEGIN {
        if (has) { evs = ev; eps = sprintf("%.0f", ev / t); ls = losses; nw = notw } else { evs = "-"; eps = "-"; ls = "-"; nw = "-" }
        printf "%-22s %9.3f %9.1fx %10.0f %10s %10s %7s %11s %10s\n", name, t, t / ut, ns, evs, eps, ls, nw, cpu
    }'
}
echo
printf "alloc_bench: %s iterations x %s thread(s) = %s malloc/free pairs\n" "$ITERATIONS" "$THREADS" "$pairs"
printf "%-22s %9s %10s %10s %10s %10s %7s %11s %10s\n" mode wall_s slowdown ns/pair events events/s losses not_written tracer_cpu
printf "%-22s %9.3f %9.1fx %10s %10s %10s %7s %11s %10s\n" untraced "$ut" 1 0 - - - - -
row "leakscope full" full
row "leakscope sample=$SAMPLE" sampled
row "leakscope bytes=$SAMPLE_BYTES" sampled_bytes
row "bpftrace" bpftrace
row "leakscope full, free@0" full_at_start
if [[ $FLOOR == 1 ]]; then
    row "empty probes, free@0" empty_all
    row "empty, alloc side" empty_alloc
    row "empty, alloc entries" empty_entry
fi
echo
cf=$(cost full) cb=$(cost bpftrace) cs=$(cost sampled)
ratio=$(awk -v a="$cf" -v b="$cb" 'BEGIN{printf "%.2f", a / b}')
slow=$(awk -v t="${wall[sampled]}" -v ut="$ut" 'BEGIN{printf "%.1f", (t / ut - 1) * 100}')
fail=0
if awk -v r="$ratio" 'BEGIN{exit !(r <= 0.5)}'; then m=met; else m="NOT met"; fail=1; fi
printf "leakscope/bpftrace cost per pair <= 0.5: %s (%s ns / %s ns = %s)\n" "$m" "$cf" "$cb" "$ratio"
if awk -v s="$slow" 'BEGIN{exit !(s <= 10)}'; then m=met; else m="NOT met"; fail=1; fi
printf "sampled (1 in %s) slowdown <= 10%%: %s (+%s%%, %s ns per pair: 10%% is reached at %s pairs/s per thread)\n" \
    "$SAMPLE" "$m" "$slow" "$cs" "$(awk -v c="$cs" 'BEGIN{printf "%.0f", (c > 0) ? 0.1e9 / c : 0}')"
if [[ ${losses[full]} == 0 ]]; then m=met; else m="NOT met"; fail=1; fi
printf "full tracing without loss: %s (%s events lost; %s events at %s events/s; %s not written to native_events)\n" \
    "$m" "${losses[full]}" "${events[full]}" "$(awk -v e="${events[full]}" -v t="${wall[full]}" 'BEGIN{printf "%.0f", e / t}')" "${notw[full]}"
if [[ $BPF_STATS == 1 ]]; then
    echo
    echo "where the cost goes (separate runs with kernel.bpf_stats_enabled=1):"
    printf "%-22s %9s %14s %11s %12s %19s\n" mode ns/pair bpf_runs/pair bpf_ns/run bpf_ns/pair probe+rest_ns/pair
    for m in full sampled sampled_bytes bpftrace full_at_start; do
        l=$(<"$WORK/$m.stats")
        awk -v name="$m" -v t="$(field elapsed_s "$l")" -v ut="$ut" -v p="$pairs" -v bt="$(num bpf_ns "$l")" \
            -v bn="$(num bpf_runs "$l")" 'BEGIN {
            c = (t - ut) * 1e9 / p
            printf "%-22s %9.0f %14.2f %11.0f %12.0f %19.0f\n", name, c, bn / p, bn ? bt / bn : 0, bt / p, c - bt / p
        }'
    done
    echo "(bpftrace's programs also run, and return at the PID check, in every other process that calls"
    echo " these functions meanwhile: its runs per pair include those)"
fi
if [[ $FLOOR == 1 ]]; then
    csb=$(cost sampled_bytes) ea=$(cost empty_all) el=$(cost empty_alloc) ee=$(cost empty_entry)
    floor=$(awk -v a="$el" -v b="$ee" 'BEGIN{printf "%.1f", a + b}')
    echo
    echo "the uprobe floor (bpftrace with empty probes; ns per pair):"
    printf "  empty probes on the same functions, free at +0 (single-stepped): %s\n" "$ea"
    printf "  at the recorder's placement (free at +3, emulated), estimated as alloc side %s + one entry trap %s: %s\n" \
        "$el" "$ee" "$floor"
    awk -v ut="$ut" -v p="$pairs" -v f="$floor" -v s="$cs" -v sb="$csb" -v ea="$ea" -v n="$SAMPLE" 'BEGIN {
        u = ut * 1e9 / p
        printf "  untraced loop: %.1f ns per pair; 10%% of it is %.1f ns: the floor alone is %.0fx that\n", u, u / 10, f / (u / 10)
        printf "  10%% slowdown is reached at (pairs/s per thread): floor %.0f, sample=%s %.0f, bytes %.0f, empty free@0 %.0f\n", 0.1e9 / f, n, 0.1e9 / s, 0.1e9 / sb, 0.1e9 / ea
        printf "  sampled cost above the floor: sample=%s %+.0f ns, bytes %+.0f ns per pair\n", n, s - f, sb - f
    }'
fi
echo "loadavg: $LOAD_BEFORE before, $LOAD_AFTER after the timed rounds"
echo "raw runs and logs: $WORK"
machine_line
exit "$fail"
