#!/usr/bin/env bash
# Runs every fuzz target (fuzz/fuzz_targets/) with libFuzzer for RUNS
# executions each (default 10 million), JOBS at a time (default 2), then
# minimises each
# corpus (cargo fuzz cmin) and prints one markdown row per target for
# RELIABILITY.md: target, executions, seconds, corpus files before and
# after, crashes. A crash stops its target; its input is in
# fuzz/artifacts/<target>/: copy it to fuzz/regressions/<target>/ (the
# corpus replay in `cargo test` then runs it) and fix the decoder.
#
#   scripts/fuzz.sh [RUNS] [TARGET...]
#
# Needs the nightly toolchain and cargo-fuzz (`cargo +nightly install
# cargo-fuzz`). Builds in $CARGO_TARGET_DIR (default
# ~/.cache/coral/fuzz-target), apart from the workspace's build.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-10000000}"
JOBS="${JOBS:-2}"
shift || true
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then
    TARGETS=(otlp_wire otlp_json gzip_body otlp_exports colony_page config_yaml ask_question)
fi
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/coral/fuzz-target}"
LOGS=fuzz/logs
mkdir -p "$LOGS"
# Debug assertions on (integer overflow panics); no sanitizer: the code
# fuzzed is safe Rust, and without one libFuzzer runs several times faster.
FLAGS=(--sanitizer none --debug-assertions)
cargo +nightly fuzz build "${FLAGS[@]}"

run() {
    local t=$1
    local before
    before=$(ls "fuzz/corpus/$t" | wc -l)
    local start=$SECONDS
    local status=0
    # Questions are short, and reading one costs more the longer it is.
    local max_len=65536
    [ "$t" = ask_question ] && max_len=1024
    cargo +nightly fuzz run "${FLAGS[@]}" "$t" "fuzz/corpus/$t" -- \
        -runs="$RUNS" -max_len="$max_len" -rss_limit_mb=2048 -timeout=10 \
        -print_final_stats=1 >"$LOGS/$t.log" 2>&1 || status=$?
    echo "$t $before $((SECONDS - start)) $status" >"$LOGS/$t.done"
}
pids=()
for t in "${TARGETS[@]}"; do
    run "$t" &
    pids+=($!)
    if [ ${#pids[@]} -ge "$JOBS" ]; then
        wait "${pids[0]}"
        pids=("${pids[@]:1}")
    fi
done
wait

echo "| Target | Executions | Seconds | Corpus (seeds → minimised) | Crashes |"
echo "|---|---:|---:|---|---:|"
for t in "${TARGETS[@]}"; do
    read -r _ before secs status <"$LOGS/$t.done"
    execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$LOGS/$t.log" | tail -n 1 | grep -o '[0-9]*$' || echo 0)
    cargo +nightly fuzz cmin "${FLAGS[@]}" "$t" "fuzz/corpus/$t" >"$LOGS/$t.cmin.log" 2>&1 || true
    after=$(ls "fuzz/corpus/$t" | wc -l)
    crashes=$(ls "fuzz/artifacts/$t" 2>/dev/null | wc -l)
    echo "| \`$t\` | $execs | $secs | $before → $after | $crashes (exit $status) |"
done
