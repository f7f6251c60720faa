#!/usr/bin/env bash
# Benchmark (issue #12, "Scale, measured"): `leakscope fleet rank` over a synthetic fleet of
# CAPTURES captures, in one process on local disk, on a Ballista cluster of EXECUTORS
# executors on this machine, and from S3 (a moto or s3s-fs server on loopback, S3_SERVER), in
# one run (docs/performance.md, "Fleet scale"). Prints, per run:
#
#   - wall time, CPU time (client + executors), sample rows per second, peak RSS of the
#     client and of each executor (VmHWM);
#   - bytes in: what the local run read (rchar: every byte its read()/pread() calls
#     returned, counted by the kernel for the reaped child, benches/fleet_scale.py measure),
#     the loopback bytes of the cluster run (/proc/net/dev `lo` receive counter: every byte
#     between client, scheduler and executors; keep other loopback traffic off the machine),
#     and the bytes the S3 server sent (a counting TCP proxy in front of it), per sample row;
#   - whether the fleet JSON of the cluster run is byte-identical to the local one, and what
#     differs in the S3 run's (only `location` should);
#   - the per-capture fixed cost (TINY captures of 2,000 rows ranked locally and on the
#     cluster) and a scale-out model for 100 billion rows on 100 executors.
#
#   benches/fleet_scale.sh                                          # 1000 x 100 x 1000 = 100M rows
#   CAPTURES=1000 PROFILES=1000 STACKS=1000 benches/fleet_scale.sh  # the 1 billion rows of #12
#   CAPTURES=200 BUILD=0 S3=0 benches/fleet_scale.sh                # smaller, no S3
#   S3_SERVER=s3s-fs CAPTURES=1000 PROFILES=1000 STACKS=1000 benches/fleet_scale.sh
#                                              # S3 from disk: the fleet does not fit in moto
#
# Environment:
#   CAPTURES           captures in the fleet (default 1000), pod-0000 ... below WORKDIR/fleet
#   PROFILES, STACKS   size of each capture (default 100 x 1000 = 100k sample rows)
#   SERVICES           services the pods run (default 10): pod i runs svc-(i % SERVICES),
#                      generated with --seed 1+(i % SERVICES). The seed draws the whole model
#                      (call sites, stacks, leak shapes), so pods of one service share their
#                      call sites, as one binary would; within a service each pod's
#                      --leak-scale differs (0.80 ... 1.20, repeating every 41 pods) and one
#                      pod in each OUTLIER_EVERY (default 100) leaks 10x, the fleet's
#                      outliers, spread over the services
#   TINY               captures of 20 profiles x 100 stacks for the per-capture cost (default
#                      40; 0 skips)
#   WORKDIR            fleet, logs and metrics (default target/bench/fleet)
#   JOBS               fleet rank --jobs (default 2)
#   GEN_JOBS           leakscope-synth processes at once (default nproc)
#   EXECUTORS, TASKS   executors of the cluster and --concurrent-tasks of each (default 2, 1)
#   CLUSTER=0, S3=0    skip the cluster or the S3 run
#   S3_SERVER          the S3 server of the S3 run: moto (default; tests/scripts/moto_s3.py,
#                      in memory: the fleet is uploaded with boto3 and held in moto's RAM) or
#                      s3s-fs (crates.io s3s-fs, objects are files below a root directory,
#                      buckets its top-level directories: the fleet is served in place, as
#                      hard links below WORKDIR/s3s-root/fleet/fleet, no data copied, or as a
#                      `cp --reflink=auto` copy when hard links fail; its ETags, the files'
#                      MD5s, are written once beside them, see benches/fleet_scale.py
#                      s3s-etags). Both check credentials (SigV4) and listen on 127.0.0.1
#   S3S_FS_VERSION     s3s-fs version to install when missing (default 0.14.1, the newest
#                      that builds with rustc 1.95; 0.17 needs 1.96)
#   S3S_FS_INSTALL     `cargo install --root` of s3s-fs (default ~/.cargo/s3s-fs); it is
#                      installed (niced, --locked --features binary) only when
#                      S3S_FS_INSTALL/bin/s3s-fs is missing or another version
#   PROFILE_DIR        release (default) or debug binaries
#   BIN_DIR            directory of the binaries (default target/PROFILE_DIR of this checkout;
#                      relative paths are from the checkout)
#                      e.g. another worktree's target/release; needs BUILD=0
#   BUILD=0            use the existing binaries
#   GEN_ONLY=1         generate the fleet and stop
#   CLEAN=1            delete the generated fleet at the end (it is reused otherwise)
set -euo pipefail
# The whole script is one block, parsed before it runs: editing the file during a run
# cannot change the run.
{
cd "$(dirname "$0")/.."

CAPTURES=${CAPTURES:-1000}
PROFILES=${PROFILES:-100}
STACKS=${STACKS:-1000}
SERVICES=${SERVICES:-10}
OUTLIER_EVERY=${OUTLIER_EVERY:-100}
TINY=${TINY:-40}
WORKDIR=${WORKDIR:-target/bench/fleet}
JOBS=${JOBS:-2}
GEN_JOBS=${GEN_JOBS:-$(nproc)}
EXECUTORS=${EXECUTORS:-2}
TASKS=${TASKS:-1}
CLUSTER=${CLUSTER:-1}
S3=${S3:-1}
PROFILE_DIR=${PROFILE_DIR:-release}
BUILD=${BUILD:-1}
CLEAN=${CLEAN:-0}
S3_SERVER=${S3_SERVER:-moto}
S3S_FS_VERSION=${S3S_FS_VERSION:-0.14.1}
S3S_FS_INSTALL=${S3S_FS_INSTALL:-$HOME/.cargo/s3s-fs}
BIN_DIR=${BIN_DIR:-}

log() { printf '[fleet_scale %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

case "$S3_SERVER" in moto | s3s-fs) ;; *) die "S3_SERVER=$S3_SERVER: moto or s3s-fs" ;; esac
[ -z "$BIN_DIR" ] || [ "$BUILD" = 0 ] || die "BIN_DIR=$BIN_DIR takes built binaries: set BUILD=0"
mkdir -p "$WORKDIR"
WORKDIR=$(cd "$WORKDIR" && pwd)
TOOLS=$(pwd)/benches/fleet_scale.py
if [ "$BUILD" = 1 ]; then
    flag=""; [ "$PROFILE_DIR" = release ] && flag="--release"
    log "building leakscope, the cluster binaries and leakscope-synth ($PROFILE_DIR)"
    cargo build $flag -p leakscope -p leakscope-tests --bins
fi
BIN=$(pwd)/target/$PROFILE_DIR
if [ -n "$BIN_DIR" ]; then
    BIN=$(cd "$BIN_DIR" && pwd) || die "BIN_DIR=$BIN_DIR is not a directory"
fi
for b in leakscope leakscope-scheduler leakscope-executor leakscope-synth; do
    [ -x "$BIN/$b" ] || die "missing $BIN/$b (BUILD=1 builds it)"
done
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
BUILT="binaries built from it"
[ "$BUILD" = 1 ] || BUILT="BUILD=0: binaries as found in $BIN, maybe older"
log "commit $COMMIT; $(nproc) cores, loadavg $(cut -d' ' -f1-3 /proc/loadavg)"

# pod_recipe I: "SERVICE SCALE" of pod I. One outlier (10x) per OUTLIER_EVERY pods, at offset
# (block % SERVICES) of its block, so the outliers fall in different services.
pod_recipe() {
    local i=$1 block=$(($1 / OUTLIER_EVERY)) x
    if [ $((i % OUTLIER_EVERY)) -eq $(((block % SERVICES) % OUTLIER_EVERY)) ]; then
        echo "$((i % SERVICES)) 10"
    else
        x=$((80 + (i * 37) % 41))
        printf '%d %d.%02d\n' $((i % SERVICES)) $((x / 100)) $((x % 100))
    fi
}

# gen_one DIR NAME I PROFILES STACKS SERVICE SCALE: one synthetic pod capture and its marker
# (WORKDIR/.gen/NAME.done: the recipe, then the sample rows). Runs under xargs -P.
# shellcheck disable=SC2317 # invoked through xargs
gen_one() {
    local dir=$1 name=$2 i=$3 profiles=$4 stacks=$5 svc=$6 scale=$7
    local marker=$dir/../.gen/$name.done
    rm -rf "${dir:?}/$name" "$marker"
    local out
    out=$("$BIN/leakscope-synth" --out "$dir/$name" --profiles "$profiles" --stacks "$stacks" \
        --seed $((1 + svc)) --target "svc-$svc" --host "$name" --label "pod=$name" \
        --label "service=svc-$svc" --leak-scale "$scale" --writers 1 \
        --truth "$dir/../.gen/$name.truth.json" 2>&1) || { echo "$out" >&2; return 1; }
    # "... = N sample rows ..." -> N
    local rows
    rows=$(sed -n 's/.* = \([0-9]*\) sample rows.*/\1/p' <<<"$out")
    printf '%s\n%s\n' "$profiles x $stacks svc-$svc x$scale" "$rows" >"$marker"
}
export -f gen_one
export BIN SERVICES OUTLIER_EVERY

# gen_fleet DIR N PROFILES STACKS
gen_fleet() {
    local dir=$1 n=$2 profiles=$3 stacks=$4
    mkdir -p "$dir" "$dir/../.gen"
    local t0=$SECONDS
    local i name svc scale first todo=()
    for ((i = 0; i < n; i++)); do
        printf -v name 'pod-%04d' "$i"
        read -r svc scale < <(pod_recipe "$i")
        first=""
        [ -f "$dir/../.gen/$name.done" ] && read -r first <"$dir/../.gen/$name.done"
        [ "$first" = "$profiles x $stacks svc-$svc x$scale" ] || todo+=("$name" "$i" "$svc" "$scale")
    done
    log "$((${#todo[@]} / 4)) of $n captures to write"
    # shellcheck disable=SC2016 # expanded by the inner bash
    [ ${#todo[@]} -eq 0 ] || printf '%s\n' "${todo[@]}" |
        xargs -P "$GEN_JOBS" -n 4 bash -c 'gen_one "$1" "$4" "$5" "$2" "$3" "$6" "$7"' _ \
            "$dir" "$profiles" "$stacks" || die "leakscope-synth failed (above)"
    log "generated $dir ($n captures) in $((SECONDS - t0)) s"
}

FLEET=$WORKDIR/fleet
TINY_FLEET=$WORKDIR/tiny/fleet
log "step 1: generating $CAPTURES captures of $PROFILES profiles x $STACKS stacks below $FLEET ($GEN_JOBS at once)"
gen_fleet "$FLEET" "$CAPTURES" "$PROFILES" "$STACKS"
if [ "$TINY" -gt 0 ]; then
    log "step 1b: generating $TINY tiny captures (20 profiles x 100 stacks) below $TINY_FLEET"
    gen_fleet "$TINY_FLEET" "$TINY" 20 100
fi
[ "${GEN_ONLY:-0}" = 1 ] && { log "GEN_ONLY=1: stopping after the generation"; exit 0; }

# Captures of an earlier, larger run beyond the CAPTURES asked for would be ranked too.
prune() {
    local dir=$1 n=$2 p idx
    for p in "$dir"/pod-*; do
        [ -e "$p" ] || continue
        idx=$((10#${p##*/pod-}))
        [ "$idx" -ge "$n" ] && rm -rf "$p" "$dir/../.gen/pod-${p##*/pod-}.done"
    done
    return 0
}
prune "$FLEET" "$CAPTURES"
# rows_of DIR N: the sample rows leakscope-synth reported for the N captures (line 2 of each
# marker; prune left only these).
rows_of() {
    local dir=$1 n=$2
    find "$dir/../.gen" -name 'pod-*.done' -exec awk 'FNR == 2' {} + | awk -v n="$n" -v d="$dir" '
        { s += $1; c++ }
        END { if (c != n) { print "only " c " of " n " captures of " d " were generated" > "/dev/stderr"; exit 1 }
              printf "%.0f\n", s }'
}
ROWS=$(rows_of "$FLEET" "$CAPTURES")
FLEET_BYTES=$(du -sb "$FLEET" | cut -f1)
SAMPLES_BYTES=$(find "$FLEET" -path '*/samples/*' -name '*.parquet' -printf '%s\n' |
    awk '{s += $1} END {printf "%.0f\n", s}')
TINY_ROWS=0
if [ "$TINY" -gt 0 ]; then
    prune "$TINY_FLEET" "$TINY"
    TINY_ROWS=$(rows_of "$TINY_FLEET" "$TINY")
fi
log "fleet: $ROWS sample rows, $((FLEET_BYTES >> 20)) MiB on disk ($((SAMPLES_BYTES >> 20)) MiB samples)"

FACTS=$WORKDIR/facts.env
: >"$FACTS"
fact() { printf '%s=%s\n' "$1" "$2" >>"$FACTS"; }
fact captures "$CAPTURES"; fact profiles "$PROFILES"; fact stacks "$STACKS"; fact rows "$ROWS"
fact fleet_bytes "$FLEET_BYTES"; fact samples_bytes "$SAMPLES_BYTES"; fact jobs "$JOBS"
fact executors "$EXECUTORS"; fact tiny "$TINY"; fact tiny_rows "$TINY_ROWS"
rm -f "$WORKDIR"/*.metrics.json

# fleet_rank NAME LOCATION [FLAGS...]: `fleet rank LOCATION --by label:pod --format json`,
# JSON to WORKDIR/NAME.json, measured into WORKDIR/NAME.metrics.json.
fleet_rank() {
    local name=$1 loc=$2
    shift 2
    python3 "$TOOLS" measure "$WORKDIR/$name.metrics.json" "$BIN/leakscope" fleet rank "$loc" \
        --by label:pod --format json --jobs "$JOBS" "$@" \
        >"$WORKDIR/$name.json" 2>"$WORKDIR/$name.err" ||
        die "$name: fleet rank failed: $(tail -3 "$WORKDIR/$name.err")"
    log "$name: $(python3 "$TOOLS" brief "$WORKDIR/$name.metrics.json")"
}

log "step 2: fleet rank $FLEET --by label:pod --format json --jobs $JOBS, in process"
fleet_rank local "$FLEET"
[ "$TINY" -gt 0 ] && fleet_rank tiny_local "$TINY_FLEET"

lo_bytes() { awk '/^ *lo:/ {sub(/^ *lo:/, ""); printf "%.0f\n", $1}' /proc/net/dev; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    PIDS=()
    exec 3>&-
}
trap cleanup EXIT

# executor_facts PREFIX TICKS_BEFORE...: each executor's CPU seconds since TICKS_BEFORE and
# its peak RSS so far (VmHWM), as facts PREFIX_executors.
executor_facts() {
    local prefix=$1 hz json="" i=0 p
    shift
    hz=$(getconf CLK_TCK)
    local start=("$@")
    for p in "${EXEC_PIDS[@]}"; do
        json+="{\"cpu_s\": $(((($(cpu_ticks "$p") - ${start[$i]}) * 100) / hz))e-2, "
        json+="\"hwm_kib\": $(awk '/VmHWM/ {print $2}' "/proc/$p/status")},"
        i=$((i + 1))
    done
    fact "${prefix}_executors" "[${json%,}]"
}

if [ "$CLUSTER" = 1 ]; then
    log "step 3: the same on a Ballista cluster of $EXECUTORS executors ($TASKS task(s) each)"
    RUST_LOG=info "$BIN/leakscope-scheduler" --port 0 2>"$WORKDIR/scheduler.log" &
    PIDS+=($!)
    SCHED_PID=$!
    url=""
    for _ in $(seq 300); do
        url=$(grep -o 'df://[0-9.:]*' "$WORKDIR/scheduler.log" | head -1 || true)
        [ -n "$url" ] && break
        sleep 0.1
    done
    [ -n "$url" ] || die "scheduler did not start: $(tail -3 "$WORKDIR/scheduler.log")"
    EXEC_PIDS=()
    for i in $(seq "$EXECUTORS"); do
        rm -rf "$WORKDIR/work-$i"
        RUST_LOG=info "$BIN/leakscope-executor" --scheduler "$url" --port "$(free_port)" \
            --grpc-port "$(free_port)" --concurrent-tasks "$TASKS" \
            --work-dir "$WORKDIR/work-$i" 2>"$WORKDIR/executor-$i.log" &
        PIDS+=($!)
        EXEC_PIDS+=($!)
    done
    for i in $(seq "$EXECUTORS"); do
        for _ in $(seq 300); do
            grep -qs "registration succeed" "$WORKDIR/executor-$i.log" && break
            sleep 0.1
        done
        grep -qs "registration succeed" "$WORKDIR/executor-$i.log" ||
            die "executor $i did not register: $(tail -3 "$WORKDIR/executor-$i.log")"
    done
    if [ "$TINY" -gt 0 ]; then
        ticks=(); for p in "${EXEC_PIDS[@]}"; do ticks+=("$(cpu_ticks "$p")"); done
        before=$(lo_bytes)
        fleet_rank tiny_cluster "$TINY_FLEET" --cluster "$url"
        fact tiny_cluster_bytes $(($(lo_bytes) - before))
        executor_facts tiny_cluster "${ticks[@]}"
        if cmp -s "$WORKDIR/tiny_local.json" "$WORKDIR/tiny_cluster.json"; then
            fact tiny_cluster_same yes
        else
            fact tiny_cluster_same no
        fi
    fi
    ticks=(); for p in "${EXEC_PIDS[@]}"; do ticks+=("$(cpu_ticks "$p")"); done
    before=$(lo_bytes)
    fleet_rank cluster "$FLEET" --cluster "$url"
    fact cluster_lo_bytes $(($(lo_bytes) - before))
    executor_facts cluster "${ticks[@]}"
    # Every capture opens its own Ballista session (and a job per query) on the scheduler.
    fact cluster_scheduler_hwm_kib "$(awk '/VmHWM/ {print $2}' "/proc/$SCHED_PID/status")"
    fact cluster_scheduler_rss_kib "$(awk '/VmRSS/ {print $2}' "/proc/$SCHED_PID/status")"
    if cmp -s "$WORKDIR/local.json" "$WORKDIR/cluster.json"; then
        fact cluster_same yes
    else
        fact cluster_same no
        log "cluster JSON differs from the local one:"
        python3 "$TOOLS" compare "$WORKDIR/local.json" "$WORKDIR/cluster.json" >&2
    fi
    cleanup
fi

# start_moto: moto on a free loopback port, the fleet uploaded to s3://fleet/fleet. Sets
# SERVER_PORT, SERVER_PID, S3_KEY, S3_SECRET.
start_moto() {
    if ! python3 -c 'import moto.server, boto3, flask, werkzeug' >/dev/null 2>&1; then
        log "installing moto[server] from PyPI"
        python3 -m pip install -q 'moto[server]'
    fi
    SERVER_PORT=$(free_port)
    rm -f "$WORKDIR/moto.stdin"
    mkfifo "$WORKDIR/moto.stdin"
    python3 tests/scripts/moto_s3.py "$SERVER_PORT" fleet <"$WORKDIR/moto.stdin" \
        >"$WORKDIR/moto.out" 2>"$WORKDIR/moto.err" &
    PIDS+=($!)
    SERVER_PID=$!
    exec 3>"$WORKDIR/moto.stdin"   # moto serves until this closes
    for _ in $(seq 600); do
        grep -qs READY "$WORKDIR/moto.out" && break
        sleep 0.1
    done
    local ready
    read -r ready S3_KEY S3_SECRET <"$WORKDIR/moto.out" || true
    [ "${ready:-}" = READY ] || die "moto did not start: $(tail -3 "$WORKDIR/moto.err")"
    local t0=$SECONDS nfiles nbytes
    read -r nfiles nbytes < <(AWS_ACCESS_KEY_ID=$S3_KEY AWS_SECRET_ACCESS_KEY=$S3_SECRET \
        python3 "$TOOLS" upload "http://127.0.0.1:$SERVER_PORT" fleet fleet "$FLEET")
    log "uploaded $nfiles files, $((nbytes >> 20)) MiB to s3://fleet/fleet in $((SECONDS - t0)) s"
}

# start_s3s_fs: s3s-fs on a free loopback port, root WORKDIR/s3s-root, whose bucket
# directory fleet/ holds fleet/: the fleet's files as hard links (the same inodes, no data
# copied), or copied with cp --reflink=auto when hard links fail (another file system).
# s3s-fs lists a bucket with readdir's file types, so a symlinked fleet/fleet would be one
# odd object, not a directory; a symlinked bucket directory would work but is not needed.
# Sets SERVER_PORT, SERVER_PID, S3_KEY, S3_SECRET.
start_s3s_fs() {
    local s3s=$S3S_FS_INSTALL/bin/s3s-fs
    if [ "$("$s3s" --version 2>/dev/null)" != "s3s-fs $S3S_FS_VERSION" ]; then
        log "installing s3s-fs $S3S_FS_VERSION into $S3S_FS_INSTALL (cargo install, niced)"
        nice -n 10 cargo install s3s-fs --version "$S3S_FS_VERSION" --locked \
            --features binary --root "$S3S_FS_INSTALL" ||
            die "cargo install s3s-fs $S3S_FS_VERSION failed"
    fi
    local root=$WORKDIR/s3s-root t0=$SECONDS how
    # Rebuilt every run: the generation replaces a capture's files (new inodes).
    rm -rf "$root/fleet"
    mkdir -p "$root/fleet"
    if cp -al "$FLEET" "$root/fleet/fleet" 2>/dev/null; then
        how="hard links, no data copied"
    else
        rm -rf "$root/fleet/fleet"
        cp -a --reflink=auto "$FLEET" "$root/fleet/fleet" || die "cannot copy $FLEET to $root"
        how="a cp --reflink=auto copy"
    fi
    local nfiles nbytes nhashed
    read -r nfiles nbytes nhashed < <(python3 "$TOOLS" s3s-etags "$root" fleet fleet "$FLEET")
    log "s3://fleet/fleet is $FLEET served in place from $root ($how; $nfiles files," \
        "$((nbytes >> 20)) MiB; ETags of $nhashed files hashed, the others' kept) in $((SECONDS - t0)) s"
    S3_KEY=leakscope-bench
    S3_SECRET=$(python3 -c 'import secrets; print(secrets.token_hex(20))')
    SERVER_PORT=$(free_port)
    RUST_LOG=s3s_fs=info "$s3s" --host 127.0.0.1 --port "$SERVER_PORT" --access-key "$S3_KEY" \
        --secret-key "$S3_SECRET" "$root" >"$WORKDIR/s3s-fs.log" 2>&1 &
    PIDS+=($!)
    SERVER_PID=$!
    for _ in $(seq 300); do
        grep -qs "server is running" "$WORKDIR/s3s-fs.log" && break
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    grep -qs "server is running" "$WORKDIR/s3s-fs.log" ||
        die "s3s-fs did not start: $(tail -5 "$WORKDIR/s3s-fs.log")"
}

if [ "$S3" = 1 ]; then
    log "step 4: the same from S3 ($S3_SERVER on loopback, behind a byte-counting proxy)"
    if [ "$S3_SERVER" = moto ]; then start_moto; else start_s3s_fs; fi
    export AWS_ACCESS_KEY_ID=$S3_KEY AWS_SECRET_ACCESS_KEY=$S3_SECRET AWS_REGION=us-east-1
    rm -f "$WORKDIR/proxy.port" "$WORKDIR/proxy.json"
    python3 "$TOOLS" proxy "$WORKDIR/proxy.port" "$SERVER_PORT" "$WORKDIR/proxy.json" &
    PIDS+=($!)
    for _ in $(seq 100); do [ -s "$WORKDIR/proxy.port" ] && break; sleep 0.1; done
    endpoint="http://127.0.0.1:$(cat "$WORKDIR/proxy.port")"
    before=$(lo_bytes)
    server_ticks=$(cpu_ticks "$SERVER_PID")
    fleet_rank s3 s3://fleet/fleet --s3-endpoint "$endpoint"
    lo=$(($(lo_bytes) - before))
    sleep 1   # the proxy writes its counts as each connection closes
    read -r to from conns reqs < <(python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); print(c["to_server"], c["from_server"], c["connections"], c["requests"])' "$WORKDIR/proxy.json")
    fact s3_to_server "$to"; fact s3_from_server "$from"; fact s3_lo_bytes "$lo"
    fact s3_requests "$reqs"
    fact s3_server "$S3_SERVER"
    fact s3_server_hwm_kib "$(awk '/VmHWM/ {print $2}' "/proc/$SERVER_PID/status")"
    fact s3_server_cpu_s "$(((($(cpu_ticks "$SERVER_PID") - server_ticks) * 100) / $(getconf CLK_TCK)))e-2"
    log "S3 run: $((from >> 20)) MiB from the server, $((to >> 20)) MiB to it, $reqs requests on $conns connections; loopback counter $((lo >> 20)) MiB (both hops of the proxy)"
    log "S3 JSON vs local JSON:"
    python3 "$TOOLS" compare "$WORKDIR/local.json" "$WORKDIR/s3.json" | tee "$WORKDIR/s3.diff" >&2
    if [ "$(cat "$WORKDIR/s3.diff")" = "identical JSON values" ]; then
        fact s3_same yes
    elif ! grep -qv '^\$\.location:' "$WORKDIR/s3.diff"; then
        fact s3_same "only \$.location"
    else
        fact s3_same no
    fi
    cleanup
fi

fact machine "$(nproc) cores, loadavg $(cut -d' ' -f1-3 /proc/loadavg) at the end, commit $COMMIT ($BUILT)"
python3 - "$FACTS" "$WORKDIR/facts.json" <<'PY'
import json, sys
facts = {}
for line in open(sys.argv[1]):
    k, v = line.rstrip("\n").split("=", 1)
    try:
        facts[k] = json.loads(v)
    except ValueError:
        facts[k] = v
json.dump(facts, open(sys.argv[2], "w"), indent=1)
PY
log "step 5: summary"
python3 "$TOOLS" summary "$WORKDIR"
if [ "$CLEAN" = 1 ]; then
    log "deleting the generated fleet"
    rm -rf "$FLEET" "$WORKDIR/tiny" "$WORKDIR/.gen" "$WORKDIR"/work-* "$WORKDIR/s3s-root"
fi
exit 0
}
