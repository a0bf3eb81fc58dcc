//! File descriptor headroom.
//!
//! At start the agent raises its soft `RLIMIT_NOFILE` to the hard limit
//! (allowed without privileges), then keeps the OTLP listeners' connection
//! bound below it with [`STORE_RESERVE`] descriptors left for the store
//! (DuckDB's database and WAL files), the API, Beyla and host sampling. A
//! connection flood then fills the connection table, never the process.

use nix::sys::resource::{Resource, getrlimit, setrlimit};

/// Descriptors kept for everything but OTLP connections.
pub const STORE_RESERVE: u64 = 256;

/// Raises the soft open-file limit to the hard one; returns the soft limit
/// in force afterwards (`None` when it cannot be read).
pub fn raise_open_file_limit() -> Option<u64> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    if soft < hard {
        match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => return Some(hard),
            Err(error) => {
                tracing::warn!(%error, soft, hard, "cannot raise the open-file limit");
            }
        }
    }
    Some(soft)
}

/// The connection bound per listener: the configured one, lowered so that
/// `listeners` full tables leave [`STORE_RESERVE`] descriptors under
/// `open_files` (never below 16).
pub fn connection_bound(configured: usize, listeners: usize, open_files: Option<u64>) -> usize {
    let Some(open_files) = open_files else {
        return configured;
    };
    let room = open_files.saturating_sub(STORE_RESERVE) / listeners.max(1) as u64;
    let bound = configured
        .min(usize::try_from(room).unwrap_or(usize::MAX))
        .max(16);
    if bound < configured {
        tracing::warn!(
            configured,
            bound,
            open_files,
            "agent.telemetry.max_connections lowered to fit the open-file limit; raise `ulimit -n` (LimitNOFILE= under systemd) to allow more"
        );
    }
    bound
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_leaves_the_reserve_free() {
        assert_eq!(connection_bound(1024, 2, Some(1024)), (1024 - 256) / 2);
        assert_eq!(connection_bound(1024, 2, Some(1 << 20)), 1024);
        assert_eq!(connection_bound(1024, 2, None), 1024);
        assert_eq!(connection_bound(1024, 2, Some(100)), 16);
    }

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one() {
        let raised = raise_open_file_limit().expect("readable");
        let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        assert_eq!((raised, soft), (hard, hard));
    }
}
