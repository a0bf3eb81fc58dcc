#!/usr/bin/env bash
# End-to-end OTLP/gRPC load benchmark: Rotel (blackhole exporter) vs the Coral
# agent, driven by crates/coral-loadgen.
#
# Usage:
#   scripts/bench-load.sh                     # Rotel only
#   CORAL_BIN=target/release/coral scripts/bench-load.sh   # Rotel + Coral
#
# Environment (all optional):
#   CARGO_TARGET_DIR  cargo target dir (default: $HOME/.cache/coral/target)
#   CORAL_BIN         Coral binary; spawned as `$CORAL_BIN agent serve`
#   LOADGEN_BIN       use this coral-loadgen binary instead of building one
#   BENCH_VENV        venv for Rotel (default: $HOME/.cache/coral/venv-bench)
#   DURATION=30 WARMUP=5 RATE=10000   measured seconds, warm-up seconds, paced rate
#   ROTEL_PORT=4327 CORAL_PORT=4337   OTLP/gRPC ports used for the targets
#   OUT=bench-results                 where JSON results go (relative to repo root)
#   LOADGEN_ARGS="--gzip ..."         extra coral-loadgen flags for every run
#   ACKS="received"                   agent.telemetry.ack modes to run the agent with
#                                     (e.g. "received stored")
#   SAT_ARGS="--connections 4 --concurrency 64"   extra flags for saturation runs
#                                     (8 in flight is latency-bound, not CPU-bound)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/coral/target}
VENV=${BENCH_VENV:-$HOME/.cache/coral/venv-bench}
DURATION=${DURATION:-30}
WARMUP=${WARMUP:-5}
RATE=${RATE:-10000}
ROTEL_PORT=${ROTEL_PORT:-4327}
CORAL_PORT=${CORAL_PORT:-4337}
OUT=${OUT:-bench-results}
case "$OUT" in /*) ;; *) OUT="$ROOT/$OUT" ;; esac
read -r -a EXTRA <<<"${LOADGEN_ARGS:-}"
read -r -a SAT <<<"${SAT_ARGS---connections 4 --concurrency 64}"

log() { printf '\n==> %s\n' "$*" >&2; }

if [ -n "${LOADGEN_BIN:-}" ]; then
  LOADGEN=$LOADGEN_BIN
else
  log "building coral-loadgen (CARGO_TARGET_DIR=$TARGET_DIR)"
  (cd "$ROOT" && CARGO_TARGET_DIR="$TARGET_DIR" cargo build --release -q -p coral-loadgen)
  LOADGEN="$TARGET_DIR/release/coral-loadgen"
fi

log "preparing Rotel in $VENV"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" show -q rotel >/dev/null 2>&1 || "$VENV/bin/pip" install -q rotel
# The PyPI package ships the collector as rotel/rotel-agent (no console script).
ROTEL=$("$VENV/bin/python" -c 'import importlib.util, os
spec = importlib.util.find_spec("rotel")
print(os.path.join(spec.submodule_search_locations[0], "rotel-agent"))')
[ -x "$ROTEL" ] || { echo "rotel-agent not found at $ROTEL" >&2; exit 1; }
echo "rotel: $ROTEL ($("$ROTEL" --version))" >&2

mkdir -p "$OUT"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESULTS=()

# run_case NAME RATE ENDPOINT SPAWN_CMD [--spawn-env K=V ...]
run_case() {
  local name=$1 rate=$2 endpoint=$3 spawn=$4
  shift 4
  local json="$OUT/$STAMP-$name.json"
  local extra=("${EXTRA[@]}")
  if [ "$rate" = 0 ]; then extra+=("${SAT[@]}"); fi
  log "$name: rate=$rate duration=${DURATION}s warmup=${WARMUP}s"
  "$LOADGEN" --endpoint "$endpoint" --rate "$rate" --duration "$DURATION" \
    --warmup "$WARMUP" --label "$name" --spawn "$spawn" \
    --spawn-log "$OUT/$STAMP-$name.log" --json "$json" "$@" "${extra[@]}"
  RESULTS+=("$json")
}

ROTEL_CMD="$ROTEL start --exporter blackhole --otlp-grpc-endpoint 127.0.0.1:$ROTEL_PORT --otlp-http-endpoint 127.0.0.1:$((ROTEL_PORT + 1))"
run_case rotel-blackhole-$RATE "$RATE" "127.0.0.1:$ROTEL_PORT" "$ROTEL_CMD"
run_case rotel-blackhole-sat 0 "127.0.0.1:$ROTEL_PORT" "$ROTEL_CMD"

if [ -n "${CORAL_BIN:-}" ]; then
  for ack in ${ACKS:-received}; do
  for rate in "$RATE" 0; do
    label=$([ "$rate" = 0 ] && echo sat || echo "$rate")
    [ "$ack" = received ] || label="$label-ack-$ack"
    home=$(mktemp -d "${TMPDIR:-/tmp}/coral-bench.XXXXXX")
    run_case "coral-agent-$label" "$rate" "127.0.0.1:$CORAL_PORT" "$CORAL_BIN agent serve" \
      --spawn-env "CORAL_ACK=$ack" \
      --spawn-env "CORAL_HOME=$home" \
      --spawn-env "CORAL_OTLP_GRPC_ENDPOINT=127.0.0.1:$CORAL_PORT" \
      --spawn-env "CORAL_OTLP_HTTP_ENDPOINT=127.0.0.1:0" \
      --spawn-env "CORAL_AGENT_API_ENDPOINT=127.0.0.1:0" \
      --spawn-env "CORAL_ADMIN_ENDPOINT=127.0.0.1:0" \
      --spawn-env "CORAL_SAMPLE_RATE=0.10"
    rm -rf "$home"
  done
  done
else
  log "CORAL_BIN not set: skipping the Coral agent"
fi

log "results ($(nproc) CPUs; harness and target share them)"
python3 - "${RESULTS[@]}" <<'PY'
import json, sys
runs = [json.load(open(p)) for p in sys.argv[1:]]
def f(v, fmt):
    return "n/a" if v is None else format(v, fmt)
rows = [
    ("rate target (spans/s)", lambda r: "saturate" if r["rate_target"] == 0 else str(r["rate_target"])),
    ("spans/s achieved", lambda r: f(r["spans_per_sec"], ",.0f")),
    ("CPU % of one core", lambda r: f(r["cpu_pct_one_core"], ".1f")),
    ("CPU % per 10k spans/s", lambda r: f(r["cpu_pct_per_10k_spans"], ".2f")),
    ("spans/s per core (sat.)", lambda r: f(r["spans_per_sec_per_core"], ",.0f")),
    ("RSS avg (MiB)", lambda r: f(r["rss_avg_mib"], ".1f")),
    ("RSS peak (MiB)", lambda r: f(r["rss_peak_mib"], ".1f")),
    ("latency p50 / p99 (ms)", lambda r: f(r["latency_p50_ms"], ".2f") + " / " + f(r["latency_p99_ms"], ".2f")),
    ("errors", lambda r: ", ".join(f"{k}={v}" for k, v in r["errors_by_code"].items()) or "none"),
    ("harness CPU %", lambda r: f(r["harness_cpu_pct"], ".1f")),
    ("bytes/span", lambda r: f(r["bytes_per_span"], ".1f")),
    ("window (s)", lambda r: f(r["duration_s"], ".1f")),
]
print("| metric | " + " | ".join(r["target"] for r in runs) + " |")
print("|---" * (len(runs) + 1) + "|")
for name, get in rows:
    print(f"| {name} | " + " | ".join(get(r) for r in runs) + " |")
PY
echo "JSON: ${RESULTS[*]}" >&2
