#!/usr/bin/env bash
# Soak: a colony and an agent (release builds, loopback) with coral-loadgen
# sending a steady rate of OTLP/gRPC for an hour, in slices of five minutes.
# After every slice it records the agent's and the colony's RSS and open
# files, both DuckDB files' sizes, and the slice's export latency; at the end
# it prints RELIABILITY.md's soak table with the slopes (least squares), and
# checks that the colony counts every span the agent accepted.
#
#   scripts/soak.sh                       # 1 h at 10k spans/s
#   SLICES=2 SLICE_SECS=60 scripts/soak.sh   # a short rehearsal
#
# Environment (all optional):
#   RATE=10000 SLICES=12 SLICE_SECS=300   spans/s, slices, seconds per slice
#   AGENT_RETENTION=15m                   the agent's retention, so that its file
#                                         reaches its bound within the hour
#   CORAL_BIN, LOADGEN_BIN                use these binaries instead of building
#   OUT=bench-results                     where the JSON lines and the table go
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RATE=${RATE:-10000}
SLICES=${SLICES:-12}
SLICE_SECS=${SLICE_SECS:-300}
AGENT_RETENTION=${AGENT_RETENTION:-15m}
OUT=${OUT:-bench-results}
case "$OUT" in /*) ;; *) OUT="$ROOT/$OUT" ;; esac
TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/coral/release-target}

log() { printf '==> %s\n' "$*" >&2; }

if [ -z "${CORAL_BIN:-}" ] || [ -z "${LOADGEN_BIN:-}" ]; then
  log "building release binaries (CARGO_TARGET_DIR=$TARGET_DIR)"
  (cd "$ROOT" && CARGO_TARGET_DIR="$TARGET_DIR" cargo build --release --locked -q -p coral-cli -p coral-loadgen)
fi
CORAL=${CORAL_BIN:-$TARGET_DIR/release/coral}
LOADGEN=${LOADGEN_BIN:-$TARGET_DIR/release/coral-loadgen}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/coral-soak.XXXXXX")
mkdir -p "$OUT" "$WORK/colony" "$WORK/agent"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
LINES="$OUT/soak-$STAMP.jsonl"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

cat >"$WORK/colony.yaml" <<EOF
colony:
  id: soak
  api:
    endpoint: 127.0.0.1:19000
  admin:
    endpoint: 127.0.0.1:19003
    red_metrics: true
EOF
cat >"$WORK/agent.yaml" <<EOF
agent:
  id: soak-agent
  telemetry:
    endpoint: 127.0.0.1:14317
    http_endpoint: 127.0.0.1:14318
  api:
    endpoint: 127.0.0.1:19001
  admin:
    endpoint: 127.0.0.1:19002
  colony:
    endpoint: 127.0.0.1:19000
  storage:
    retention: $AGENT_RETENTION
EOF

CORAL_HOME="$WORK/colony" "$CORAL" colony serve --config "$WORK/colony.yaml" >"$WORK/colony.log" 2>&1 &
COLONY=$!
PIDS+=("$COLONY")
CORAL_HOME="$WORK/agent" "$CORAL" agent serve --config "$WORK/agent.yaml" >"$WORK/agent.log" 2>&1 &
AGENT=$!
PIDS+=("$AGENT")
for _ in $(seq 1 120); do
  curl -fsS http://127.0.0.1:19002/healthz >/dev/null 2>&1 && break
  sleep 0.5
done
curl -fsS http://127.0.0.1:19002/healthz >/dev/null || { cat "$WORK/agent.log" >&2; exit 1; }
log "agent $AGENT, colony $COLONY, work in $WORK; $SLICES × ${SLICE_SECS}s at $RATE spans/s"

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
fds() { ls "/proc/$1/fd" | wc -l; }
size() { du -cb "$@" 2>/dev/null | tail -1 | cut -f1; }

START=$(date +%s)
for slice in $(seq 1 "$SLICES"); do
  "$LOADGEN" --endpoint 127.0.0.1:14317 --rate "$RATE" --duration "$SLICE_SECS" --warmup 0 \
    --target-pid "$AGENT" --label "slice-$slice" --json "$WORK/slice.json" >"$WORK/loadgen.log" 2>&1 ||
    { cat "$WORK/loadgen.log" >&2; exit 1; }
  python3 - "$WORK/slice.json" "$slice" "$(( $(date +%s) - START ))" \
    "$(rss_kb "$AGENT")" "$(fds "$AGENT")" "$(rss_kb "$COLONY")" "$(fds "$COLONY")" \
    "$(size "$WORK"/agent/*/*.duckdb*)" "$(size "$WORK"/colony/*/*.duckdb*)" >>"$LINES" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
slice_, at, arss, afd, crss, cfd, adb, cdb = map(int, sys.argv[2:])
print(json.dumps({
    "slice": slice_, "at_s": at, "spans_per_sec": r["spans_per_sec"],
    "spans_failed": r["spans_failed"], "errors_by_code": r["errors_by_code"],
    "latency_p50_ms": r["latency_p50_ms"], "latency_p99_ms": r["latency_p99_ms"],
    "agent_cpu_pct": r["cpu_pct_one_core"],
    "agent_rss_mb": arss / 1024, "agent_fds": afd, "colony_rss_mb": crss / 1024, "colony_fds": cfd,
    "agent_db_mb": adb / 2**20, "colony_db_mb": cdb / 2**20,
}))
EOF
  tail -1 "$LINES" >&2
done

# Nothing lost on the way: once the colony has read the agent's newest row,
# it counts every span the agent accepted (after the agent's last minute is
# written, which a clean stop does).
log "stopping the agent cleanly and letting the colony catch up"
ACCEPTED=$(curl -fsS http://127.0.0.1:19002/status | python3 -c 'import json,sys; print(json.load(sys.stdin)["counters"]["spans_accepted"])')
kill -TERM "$AGENT"; wait "$AGENT" || true
CORAL_HOME="$WORK/agent" "$CORAL" agent serve --config "$WORK/agent.yaml" >>"$WORK/agent.log" 2>&1 &
AGENT=$!
PIDS+=("$AGENT")
COUNTED=0
for _ in $(seq 1 240); do
  COUNTED=$(curl -fsS http://127.0.0.1:19003/metrics/red 2>/dev/null |
    awk '/^coral_red_requests_total/ {s += $NF} END {printf "%d", s}')
  [ "$COUNTED" -ge "$ACCEPTED" ] && break
  sleep 1
done

python3 - "$LINES" "$ACCEPTED" "$COUNTED" "$RATE" "$SLICE_SECS" "$AGENT_RETENTION" <<'EOF' | tee "$OUT/soak-$STAMP.md"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
accepted, counted, rate, slice_secs, retention = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5]), sys.argv[6]

def slope(key, skip=0):
    pts = [(r["at_s"] / 3600, r[key]) for r in rows[skip:]]
    if len(pts) < 2:
        return float("nan")
    n = len(pts); mx = sum(x for x, _ in pts) / n; my = sum(y for _, y in pts) / n
    den = sum((x - mx) ** 2 for x, _ in pts)
    return sum((x - mx) * (y - my) for x, y in pts) / den if den else float("nan")

print(f"Soak: {rate} spans/s for {len(rows) * slice_secs // 60} min, agent retention {retention}\n")
print("| minutes | spans/s | failed | p50 / p99 export ms | agent CPU % | agent RSS MB | agent fds | agent DB MB | colony RSS MB | colony fds | colony DB MB |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    print(f"| {r['at_s'] // 60} | {r['spans_per_sec']:.0f} | {r['spans_failed']} | {r['latency_p50_ms']:.1f} / {r['latency_p99_ms']:.1f} | "
          f"{r['agent_cpu_pct']:.0f} | {r['agent_rss_mb']:.0f} | {r['agent_fds']} | {r['agent_db_mb']:.0f} | "
          f"{r['colony_rss_mb']:.0f} | {r['colony_fds']} | {r['colony_db_mb']:.0f} |")
skip = len(rows) // 2
print()
for key, unit in [("agent_rss_mb", "MB/h"), ("agent_fds", "fds/h"), ("agent_db_mb", "MB/h"),
                  ("colony_rss_mb", "MB/h"), ("colony_fds", "fds/h"), ("colony_db_mb", "MB/h")]:
    print(f"- slope of {key}: {slope(key):+.1f} {unit} over the run, {slope(key, skip):+.1f} {unit} over its second half")
print(f"- the agent accepted {accepted} spans; the colony counts {counted} ({'all' if counted == accepted else 'DIFFERENT'})")
EOF
log "lines in $LINES; table in $OUT/soak-$STAMP.md; logs in $WORK"
