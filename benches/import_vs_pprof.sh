#!/usr/bin/env bash
# Import benchmark: `leakscope-recorder import` of N real heap profiles vs
# `go tool pprof -raw FILE > /dev/null` over the same files, measured in one run.
#
# Usage (from the repo root):   benches/import_vs_pprof.sh
# Environment:
#   N=1000          number of heap profiles
#   PROFILES=target/bench/heap-profiles   where heap_NNNN.pb.gz are kept; reused when it
#                   already holds exactly N of them (FRESH=1 regenerates)
#   GAP=0.1         seconds between two heap fetches while generating
#   WORK=target/bench/import              scratch directory (emptied on each run)
#   GO=go           Go toolchain: for the fixture service and for `go tool pprof`
#   ALT_GO=/usr/lib/go-1.19/bin/go   a second toolchain whose `go tool pprof` is also timed
#                   (skipped when not executable; ALT_GO= to skip)
# The issue's target: import at least 5x faster than sequential `go tool pprof -raw`.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

N=${N:-1000}
PROFILES=${PROFILES:-$ROOT/target/bench/heap-profiles}
GAP=${GAP:-0.1}
WORK=${WORK:-$ROOT/target/bench/import}
FRESH=${FRESH:-0}
ALT_GO=${ALT_GO-/usr/lib/go-1.19/bin/go}

rm -rf "$WORK"
mkdir -p "$WORK"
trap stop_service EXIT

build_recorder
log "loadavg before measuring: $(cut -d" " -f1-3 /proc/loadavg)"

# --- 1. N real heap profiles ------------------------------------------------------
have=$( (find "$PROFILES" -maxdepth 1 -name "heap_*.pb.gz" 2>/dev/null || true) | wc -l)
if [[ $FRESH == 1 || $have != "$N" ]]; then
    log "fetching $N heap profiles from leaky-service into $PROFILES (${GAP}s apart)"
    rm -rf "$PROFILES"
    mkdir -p "$PROFILES"
    build_service "$WORK"
    start_service "$WORK"
    for i in $(seq -f %04g 1 "$N"); do
        curl -sf -o "$PROFILES/heap_$i.pb.gz" "http://$SERVICE_ADDR/debug/pprof/heap" ||
            die "fetch $i failed"
        sleep "$GAP"
    done
    stop_service
else
    log "reusing $N heap profiles in $PROFILES (FRESH=1 to regenerate)"
fi
mapfile -t FILES < <(find "$PROFILES" -maxdepth 1 -name 'heap_*.pb.gz' | sort)
[[ ${#FILES[@]} == "$N" ]] || die "expected $N profiles, found ${#FILES[@]}"
total_bytes=$(cat "${FILES[@]}" | wc -c)
count_samples() { # lines of the "Samples:" section of `pprof -raw`
    "$GO" tool pprof -raw "$1" 2>/dev/null |
        awk '/^Samples:/ {s = 1; next} /^Locations/ {s = 0} s && /^ *[0-9]+ +[0-9]+/ {n++} END {print n + 0}'
}
first_samples=$(count_samples "${FILES[0]}")
last_samples=$(count_samples "${FILES[-1]}")
cat "${FILES[@]}" >/dev/null # page cache warm for both sides
PPROF_BIN=$("$GO" tool -n pprof 2>/dev/null || true) # the cached pprof binary `go tool` execs

# children_ticks: sets TICKS to the CPU clock ticks (user+sys) of this shell's finished
# children so far (no command substitution: that would read another process).
children_ticks() {
    local stat f
    stat=$(<"/proc/$BASHPID/stat")
    read -r -a f <<<"${stat##*) }" # f[0] is field 3; cutime = field 16, cstime = 17
    TICKS=$((f[13] + f[14]))
}
# measure CMD...: runs CMD, prints "WALL_S CPU_S" (CPU = user+sys of everything it ran);
# fails the script if CMD fails.
measure() {
    local a b c0
    children_ticks
    c0=$TICKS
    a=$(now)
    "$@" || die "failed: $*"
    b=$(now)
    children_ticks
    awk -v a="$a" -v b="$b" -v t=$((TICKS - c0)) -v hz="$(getconf CLK_TCK)" 'BEGIN{printf "%.2f %.2f", b-a, t/hz}'
}
import_all() { # import_all OUT [env...]
    local out=$1
    shift
    rm -rf "$out"
    env "$@" /usr/bin/time -o "$out.rss" -f %M "$RECORDER" import "$PROFILES" --out "$out" 2>"$out.log"
    grep -q "imported $N profiles" "$out.log" || { cat "$out.log" >&2; return 1; }
}
pprof_seq() { local f; for f in "${FILES[@]}"; do "$@" -raw "$f" >/dev/null 2>&1 || return 1; done; }
pprof_par() { printf '%s\0' "${FILES[@]}" | xargs -0 -n1 -P"$1" "${@:2}" -raw >/dev/null 2>&1; }

# --- 2. timings, all in this run ----------------------------------------------------
log "import (rayon, all cores)"
t_import=$(measure import_all "$WORK/capture")
log "import (RAYON_NUM_THREADS=1)"
t_import1=$(measure import_all "$WORK/capture1" RAYON_NUM_THREADS=1)
log "go tool pprof -raw, sequential, $N files"
t_seq=$(measure pprof_seq "$GO" tool pprof)
log "go tool pprof -raw, xargs -P2"
t_par=$(measure pprof_par 2 "$GO" tool pprof)
t_direct=
if [[ -x $PPROF_BIN ]]; then
    log "pprof binary directly ($PPROF_BIN), sequential"
    t_direct=$(measure pprof_seq "$PPROF_BIN")
fi
t_alt=
if [[ -n $ALT_GO && -x $ALT_GO ]]; then
    log "$ALT_GO tool pprof -raw, sequential"
    t_alt=$(measure pprof_seq "$ALT_GO" tool pprof)
fi
cap_bytes=$(du -sb "$WORK/capture" | cut -f1)
rss_import=$(<"$WORK/capture.rss")
rss_import1=$(<"$WORK/capture1.rss")

# --- 3. report ----------------------------------------------------------------------
# Each t_* is "WALL CPU"; awk gets them as "WALL CPU" strings and splits them.
awk -v n="$N" -v imp="$t_import" -v imp1="$t_import1" -v seq="$t_seq" -v par="$t_par" -v direct="$t_direct" \
    -v alt="$t_alt" -v alt_name="$( [[ -n $t_alt ]] && "$ALT_GO" version | awk '{print $3}')" \
    -v rss="$rss_import" -v rss1="$rss_import1" -v main_name="$("$GO" version | awk '{print $3}')" \
    -v bytes="$total_bytes" -v cap="$cap_bytes" -v s0="$first_samples" -v s1="$last_samples" -v cores="$(nproc)" '
BEGIN {
    printf "\n%d heap profiles, %.1f MiB gz total, %d -> %d samples each; capture %.1f MiB\n\n", n, bytes / 1048576, s0, s1, cap / 1048576
    printf "%-50s %8s %8s %11s %8s %8s\n", "command", "wall s", "CPU s", "wall ms/pr", "ratio", "CPU rat."
    row("leakscope-recorder import DIR --out OUT (" cores " cores)", imp, 0)
    row("  same, RAYON_NUM_THREADS=1", imp1, 0)
    row("go tool pprof -raw FILE >/dev/null, sequential", seq, w(seq) / w(imp))
    row("go tool pprof -raw, xargs -P2", par, w(par) / w(imp))
    if (direct != "") row("$(go tool -n pprof) -raw FILE, sequential", direct, w(direct) / w(imp))
    if (alt != "") row(alt_name " go tool pprof -raw FILE, sequential", alt, w(alt) / w(imp))
    printf "(go tool pprof = %s; import peak RSS %.0f MiB, %.0f MiB with 1 thread)\n", main_name, rss / 1024, rss1 / 1024
    printf "\nratio = pprof time / import time (import with all cores)\n"
    printf "sequential go tool pprof / import:         %.1fx wall (target >= 5x: %s), %.1fx CPU\n", w(seq) / w(imp), (w(seq) / w(imp) >= 5 ? "met" : "NOT met"), c(seq) / c(imp)
    printf "xargs -P2 go tool pprof / import:          %.1fx wall\n", w(par) / w(imp)
    printf "sequential go tool pprof / 1-thread import: %.1fx wall\n", w(seq) / w(imp1)
    if (direct != "") printf "pprof binary without the go launcher / import: %.1fx wall, %.1fx CPU\n", w(direct) / w(imp), c(direct) / c(imp)
    if (alt != "") printf "%s go tool pprof / import:            %.1fx wall, %.1fx CPU\n", alt_name, w(alt) / w(imp), c(alt) / c(imp)
}
function w(t) { split(t, a, " "); return a[1] }
function c(t) { split(t, a, " "); return a[2] }
function row(name, t, r, tc) {
    printf "%-50s %8.2f %8.2f %11.2f %8s %8s\n", name, w(t), c(t), w(t) * 1000 / n, (r ? sprintf("%.1fx", r) : ""), \
        (r ? sprintf("%.1fx", c(t) / c(imp)) : "")
}'
machine_line
