#!/usr/bin/env bash
# Benchmark: `leakscope rank --cluster` and the bare `GROUP BY stack_id` on a Ballista
# cluster of 1 and of 2 executors on this machine, against the same commands in process, over
# the same synthetic capture (docs/performance.md, "Scale-out"). Prints, from one run:
#
#   - sample rows per second per executor (the GROUP BY's rows / wall / executors);
#   - bytes over loopback per sample row (every byte between client, scheduler and
#     executors: plans, shuffles and results; the `lo` receive counter of /proc/net/dev, so
#     keep other loopback traffic off the machine while it runs);
#   - peak RSS of the client and of each executor (VmHWM);
#   - each cluster wall time as a ratio of the in-process one, and whether the rankings
#     are byte-identical;
#   - what 100 executors would need for 100 billion rows at the measured per-executor rate.
#
#   benches/cluster_scale.sh                                  # 2000 profiles x 10000 stacks
#   CAPTURE=target/bench/analyzer/synth-10000x10000-s1-r1 benches/cluster_scale.sh
#
# Environment:
#   PROFILES, STACKS   generated capture size (default 2000 x 10000 = 20M rows)
#   CAPTURE            an existing capture to measure instead (only read)
#   WORKDIR            logs and generated captures (default target/bench/cluster)
#   PROFILE_DIR        release (default) or debug binaries
#   BUILD=0            use the existing binaries
#   EXECUTORS          cluster sizes to measure (default "1 2")
#   TASKS              --concurrent-tasks of each executor (default 1: one core each here)
#   BY                 rank grouping (default site)
set -euo pipefail
cd "$(dirname "$0")/.."

PROFILES=${PROFILES:-2000}
STACKS=${STACKS:-10000}
WORKDIR=${WORKDIR:-target/bench/cluster}
PROFILE_DIR=${PROFILE_DIR:-release}
BUILD=${BUILD:-1}
EXECUTORS=${EXECUTORS:-"1 2"}
TASKS=${TASKS:-1}
BY=${BY:-site}

log() { printf '[cluster_scale] %s\n' "$*" >&2; }

if [ ! -x /usr/bin/time ]; then
    log "installing GNU time"
    sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq time >/dev/null
fi
mkdir -p "$WORKDIR"
WORKDIR=$(cd "$WORKDIR" && pwd)
if [ "$BUILD" = 1 ]; then
    flag=""; [ "$PROFILE_DIR" = release ] && flag="--release"
    log "building leakscope, the cluster binaries and leakscope-synth ($PROFILE_DIR)"
    cargo build $flag -p leakscope -p leakscope-tests --bins
fi
BIN=$(pwd)/target/$PROFILE_DIR
for b in leakscope leakscope-scheduler leakscope-executor leakscope-synth; do
    [ -x "$BIN/$b" ] || { log "missing $BIN/$b (BUILD=1 builds it)"; exit 2; }
done

if [ -z "${CAPTURE:-}" ]; then
    CAPTURE=$WORKDIR/synth-${PROFILES}x${STACKS}
    if [ ! -f "$CAPTURE.done" ]; then
        rm -rf "$CAPTURE"
        log "generating $CAPTURE"
        "$BIN/leakscope-synth" --out "$CAPTURE" --profiles "$PROFILES" --stacks "$STACKS" \
            --seed 1 --runs 1 --rotate-size 64MiB >/dev/null
        touch "$CAPTURE.done"
    fi
fi
CAPTURE=$(cd "$CAPTURE" && pwd)

lo_bytes() { awk '/^ *lo:/ {sub(/^ *lo:/, ""); printf "%.0f\n", $1}' /proc/net/dev; }
GROUPBY="SELECT stack_id, SUM(inuse_bytes) AS s FROM samples GROUP BY stack_id"

# timed NAME CMD...: runs CMD, stdout to WORKDIR/NAME.out; sets WALL (s) and RSS (KiB).
timed() {
    local name=$1; shift
    /usr/bin/time -f '%e %M' -o "$WORKDIR/$name.time" "$@" >"$WORKDIR/$name.out" 2>"$WORKDIR/$name.err" ||
        { log "$name failed: $(tail -3 "$WORKDIR/$name.err")"; exit 1; }
    read -r WALL RSS <"$WORKDIR/$name.time"
}

ROWS=$("$BIN/leakscope" sql "$CAPTURE" "SELECT COUNT(*) AS n FROM samples" --format csv | tail -1)
log "capture $CAPTURE: $ROWS sample rows; machine: $(nproc) cores, loadavg $(cut -d' ' -f1-3 /proc/loadavg)"

timed local_groupby "$BIN/leakscope" sql "$CAPTURE" "$GROUPBY" --format csv
LOCAL_GB=$WALL
timed local_rank "$BIN/leakscope" rank "$CAPTURE" --by "$BY" --format json
LOCAL_RANK=$WALL LOCAL_RSS=$RSS
printf 'in process: GROUP BY stack_id %.2f s; rank --by %s %.2f s, peak RSS %d MiB\n' \
    "$LOCAL_GB" "$BY" "$LOCAL_RANK" $((LOCAL_RSS / 1024))

PIDS=()
stop_cluster() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    PIDS=()
}
trap stop_cluster EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

for n in $EXECUTORS; do
    RUST_LOG=info "$BIN/leakscope-scheduler" --port 0 2>"$WORKDIR/scheduler-$n.log" &
    PIDS+=($!)
    url=""
    for _ in $(seq 300); do
        url=$(grep -o 'df://[0-9.:]*' "$WORKDIR/scheduler-$n.log" | head -1 || true)
        [ -n "$url" ] && break
        sleep 0.1
    done
    [ -n "$url" ] || { log "scheduler did not start: $(tail -3 "$WORKDIR/scheduler-$n.log")"; exit 1; }
    EXEC_PIDS=()
    for i in $(seq "$n"); do
        RUST_LOG=info "$BIN/leakscope-executor" --scheduler "$url" --port "$(free_port)" \
            --grpc-port "$(free_port)" --concurrent-tasks "$TASKS" \
            --work-dir "$WORKDIR/work-$n-$i" 2>"$WORKDIR/executor-$n-$i.log" &
        PIDS+=($!)
        EXEC_PIDS+=($!)
    done
    for i in $(seq "$n"); do
        for _ in $(seq 300); do
            grep -qs "registration succeed" "$WORKDIR/executor-$n-$i.log" && break
            sleep 0.1
        done
    done

    before=$(lo_bytes)
    timed "cluster${n}_groupby" "$BIN/leakscope" sql "$CAPTURE" "$GROUPBY" --format csv --cluster "$url"
    GB=$WALL GB_BYTES=$(($(lo_bytes) - before))
    before=$(lo_bytes)
    timed "cluster${n}_rank" "$BIN/leakscope" rank "$CAPTURE" --by "$BY" --format json --cluster "$url"
    RK=$WALL RK_RSS=$RSS RK_BYTES=$(($(lo_bytes) - before))
    exec_rss=""
    for p in "${EXEC_PIDS[@]}"; do
        exec_rss+="$(($(awk '/VmHWM/ {print $2}' "/proc/$p/status") / 1024)) "
    done
    same=no
    cmp -s "$WORKDIR/local_rank.out" "$WORKDIR/cluster${n}_rank.out" && same=yes
    python3 - "$n" "$ROWS" "$GB" "$GB_BYTES" "$RK" "$RK_BYTES" "$RK_RSS" "$LOCAL_GB" "$LOCAL_RANK" "$same" "$exec_rss" "$BY" <<'EOF'
import sys
n, rows, gb, gbb, rk, rkb, rkrss, lgb, lrk, same, ex, by = sys.argv[1:]
n, rows = int(n), int(rows)
gb, rk, lgb, lrk = map(float, (gb, rk, lgb, lrk))
gbb, rkb, rkrss = int(gbb), int(rkb), int(rkrss)
rate = rows / gb / n
print(f"{n} executor(s): GROUP BY {gb:.2f} s ({gb / lgb:.2f}x in process), "
      f"{rate / 1e6:.1f} M rows/s per executor, {gbb / rows:.2f} loopback bytes per row")
print(f"{n} executor(s): rank --by {by} {rk:.2f} s ({rk / lrk:.2f}x in process), "
      f"{rkb / rows:.2f} loopback bytes per row, client peak RSS {rkrss // 1024} MiB, "
      f"executor peak RSS {ex.strip()} MiB, byte-identical ranking: {same}")
secs = 100e9 / (rate * 100)
print(f"model at {rate / 1e6:.1f} M rows/s per executor: 100 billion rows on 100 executors "
      f"scan in {secs:.0f} s, moving about {gbb / rows * 100e9 / 1e9:.0f} GB for the "
      f"GROUP BY by stack and {rkb / rows * 100e9 / 1e9:.0f} GB for rank --by {by}")
EOF
    stop_cluster
done
