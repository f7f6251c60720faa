#!/usr/bin/env bash
# Verdicts on prefixes of a real recording (docs/accuracy.md): what `leakscope rank` said
# after 1, 2, 3, 5 and 10 minutes, for every pattern of a ground-truth file.
#
#   benches/prefix_verdicts.sh                          # records fixtures/go/thin-service
#                                                       # for 11 min at 10 s, then judges it
#   benches/prefix_verdicts.sh CAPTURE GROUND_TRUTH.json [PREFIX...]
#
# Env: LEAKSCOPE (analyzer binary; default target/release/leakscope, else target/debug),
# INTERVAL (recording interval, default 10s), SPAN (recording length, default 11m),
# SEED (service seed, default 1), METRIC (default inuse_space).
source "$(dirname "$0")/common.sh"

LEAKSCOPE=${LEAKSCOPE:-}
if [[ -z $LEAKSCOPE ]]; then
    for b in "$ROOT/target/release/leakscope" "$ROOT/target/debug/leakscope"; do
        [[ -x $b ]] && { LEAKSCOPE=$b; break; }
    done
fi
[[ -x ${LEAKSCOPE:-} ]] || die "build the analyzer first (cargo build --release -p leakscope)"
METRIC=${METRIC:-inuse_space}

if [[ $# -ge 2 ]]; then
    capture=$1
    truth=$2
    shift 2
else
    build_recorder
    work=$(mktemp -d)
    trap 'kill "${svc_pid:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT
    log "go build fixtures/go/thin-service"
    (cd "$ROOT/fixtures/go/thin-service" && "$GO" build -o "$work/thin-service" .) >&2
    "$work/thin-service" -addr 127.0.0.1:0 -seed "${SEED:-1}" >"$work/svc.out" 2>&1 &
    svc_pid=$!
    for _ in $(seq 50); do
        addr=$(grep -o 'listening on [0-9.:]*' "$work/svc.out" | cut -d' ' -f3 || true)
        [[ -n $addr ]] && break
        sleep 0.1
    done
    [[ -n ${addr:-} ]] || die "thin-service did not start"
    capture=$work/cap
    truth=$ROOT/fixtures/go/thin-service/ground-truth.json
    log "recording $addr every ${INTERVAL:-10s} for ${SPAN:-11m} into $capture"
    "$RECORDER" record --target "http://$addr" --pid "$svc_pid" --out "$capture" \
        --interval "${INTERVAL:-10s}" --duration "${SPAN:-11m}" >&2
fi
prefixes=("$@")
[[ ${#prefixes[@]} -gt 0 ]] || prefixes=(1m 2m 3m 5m 10m)

for p in "${prefixes[@]}"; do
    # A prefix too short to fit anything (fewer than 5 profiles) is an error: shown as "-".
    if ! "$LEAKSCOPE" rank "$capture" --metric "$METRIC" --first "$p" --format json 2>/dev/null \
        >"${TMPDIR:-/tmp}/prefix-$p.json"; then
        echo '{"sections": []}' >"${TMPDIR:-/tmp}/prefix-$p.json"
    fi
done
python3 - "$truth" "$METRIC" "${prefixes[@]}" <<'EOF'
import json, os, sys
truth, metric, prefixes = sys.argv[1], sys.argv[2], sys.argv[3:]
patterns = [p for p in json.load(open(truth))["patterns"] if p["metric"] == metric]
tmp = os.environ.get("TMPDIR", "/tmp")
cells = {}
for pre in prefixes:
    r = json.load(open(f"{tmp}/prefix-{pre}.json"))
    sec = next((s for s in r["sections"] if s["metric"] == metric), None)
    cells[pre] = (sec, {})
    if sec is None:
        continue
    for f in sec["findings"]:
        fn = f["site"].split(" ")[0]
        # The first (highest-ranked) finding of a function stands for it.
        cells[pre][1].setdefault(fn, f)
print("| pattern | kind | " + " | ".join(prefixes) + " |")
print("|---|---|" + "---|" * len(prefixes))
false_alarms = 0
for p in patterns:
    row = []
    for pre in prefixes:
        f = cells[pre][1].get(p["function"])
        if f is None:
            row.append("-")
            continue
        v = f["verdict"]
        if p["kind"] == "trap" and v in ("leak", "possible-leak"):
            false_alarms += 1
        conf = f" {f['confidence']:.0%}" if v in ("leak", "possible-leak") else ""
        row.append(f"{v}{conf} (#{f['rank']})")
    print(f"| {p['name']} (`{p['function']}`) | {p['kind']} | " + " | ".join(row) + " |")
print()
print("| prefix | distinct heap profiles | repeats left out |")
print("|---|---|---|")
for pre in prefixes:
    sec = cells[pre][0]
    if sec is None:
        print(f"| {pre} | fewer than 5 (not ranked) | - |")
    else:
        print(f"| {pre} | {sec['profiles']} | {sec['repeats']} |")
print(f"\ntraps called leak or possible-leak: {false_alarms}")
EOF
