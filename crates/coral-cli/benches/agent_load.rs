//! End-to-end load benchmark of the `coral` agent against Rotel.
//!
//! `cargo bench --workspace --bench agent_load` builds the `coral` binary with
//! the optimised bench profile and runs `scripts/bench-load.sh` with it: the
//! `coral-loadgen` harness replays pre-encoded OTLP at 10,000 spans/s and at
//! saturation against Rotel (blackhole exporter) and the Coral agent, side by
//! side, and prints spans/s, CPU and RSS. The script's environment variables
//! (`RATE`, `DURATION`, `WARMUP`, `OUT`, ...) pass through.

use std::path::Path;
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let script = root.join("scripts/bench-load.sh");
    let status = Command::new("bash")
        .arg(&script)
        .env("CORAL_BIN", env!("CARGO_BIN_EXE_coral"))
        .current_dir(&root)
        .status();
    match status {
        Ok(s) if s.success() => ExitCode::SUCCESS,
        Ok(s) => {
            eprintln!("agent_load: {} exited with {s}", script.display());
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("agent_load: cannot run {}: {e}", script.display());
            ExitCode::FAILURE
        }
    }
}
