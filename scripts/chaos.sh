#!/usr/bin/env bash
# Runs the multi-host fault scenarios (crates/coral-cli/tests/chaos/) one at
# a time and prints RELIABILITY.md's rows. As root, with iproute2, nftables,
# Debian's faketime and the interop Python (.ci/run installs them).
#
#   scripts/chaos.sh                        # every scenario, as CI runs them
#   CORAL_CHAOS_OUTAGE=50m scripts/chaos.sh a_cut_link   # the documented long cut
#
# Arguments are test name filters (cargo test's).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/coral/target}"
export CORAL_PYTHON="${CORAL_PYTHON:-$HOME/.cache/coral/venv-interop/bin/python}"
export CORAL_REQUIRE_ROOT_TESTS=1 CORAL_REQUIRE_PYTHON_INTEROP=1
cargo test --workspace --locked --test chaos -- --nocapture --test-threads=1 "$@" 2>&1 |
    tee "${TMPDIR:-/tmp}/coral-chaos.log" | grep -E '^\| |^test |test result'
