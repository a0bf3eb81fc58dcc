#!/usr/bin/env bash
# Overload: ten times an agent's measured saturation rate for five minutes
# (crates/coral-cli/tests/chaos/overload.rs). The agent runs in a CPU cgroup
# capped at CORAL_OVERLOAD_CPU_PCT % of one core (default 20), so that
# coral-loadgen on the same two cores can offer ten times what it takes; its
# saturation is measured under that cap first. Release builds of coral and
# coral-loadgen; as root, with iproute2, nftables and the interop Python
# (.ci/run installs them).
#
#   scripts/overload.sh                      # 5 minutes
#   CORAL_OVERLOAD=1m scripts/overload.sh    # a shorter run
set -euo pipefail
cd "$(dirname "$0")/.."
RELEASE_DIR="${RELEASE_TARGET_DIR:-$HOME/.cache/coral/release-target}"
CARGO_TARGET_DIR="$RELEASE_DIR" cargo build --release --locked -q -p coral-cli -p coral-loadgen
export CORAL_TEST_BINARY="$RELEASE_DIR/release/coral"
export CORAL_LOADGEN="$RELEASE_DIR/release/coral-loadgen"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/coral/target}"
export CORAL_PYTHON="${CORAL_PYTHON:-$HOME/.cache/coral/venv-interop/bin/python}"
export CORAL_REQUIRE_ROOT_TESTS=1 CORAL_REQUIRE_PYTHON_INTEROP=1
cargo test --workspace --locked --test chaos -- --ignored --nocapture --test-threads=1 \
    ten_times_the_agents_saturation 2>&1 |
    tee "${TMPDIR:-/tmp}/coral-overload.log" |
    grep -E '^\| |^overload|^saturation|^the overloaded|^test |test result'
