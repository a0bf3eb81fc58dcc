//! `coral demo`: `coral up` with a built-in traffic generator, so that a
//! first run shows something within a minute: a small shop's services
//! (the fault-injection simulator's application) send OTLP to the agent,
//! with 45 minutes of history and an injected fault in its last
//! [`traffic::FAULT_MINUTES`] minutes, then live traffic. The banner prints
//! three commands to try.

pub mod traffic;

use clap::{Args, ValueEnum};
use coral_diagnose::sim::FaultKind;

use crate::up::UpArgs;

/// Options of `coral demo` (and every option of `coral up`).
#[derive(Args, Debug)]
pub struct DemoArgs {
    #[command(flatten)]
    up: UpArgs,
    /// The fault injected in the last 10 minutes of history and on.
    #[arg(long, value_enum, default_value_t = DemoFault::SlowLeaf)]
    fault: DemoFault,
    /// History sent at the start (at least 20m, at most 50m: the agent
    /// keeps an hour).
    #[arg(long, value_name = "D", default_value = "45m", value_parser = history)]
    history: i64,
}

/// The faults a demo can inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DemoFault {
    /// No fault: healthy traffic.
    None,
    /// card-validator's POST /validate gets slower (checkout slows down).
    SlowLeaf,
    /// payments' own work gets slower.
    SlowMiddle,
    /// fraud starts failing; the errors propagate to checkout.
    DownstreamErrors,
    /// inventory's UPDATE stock statement gets slower.
    SlowSql,
    /// cart calls catalog once per item (N+1).
    NPlusOne,
    /// a new shipping version fails.
    BadVersion,
}

impl DemoFault {
    fn kind(self) -> FaultKind {
        match self {
            DemoFault::None => FaultKind::Healthy,
            DemoFault::SlowLeaf => FaultKind::SlowLeaf,
            DemoFault::SlowMiddle => FaultKind::SlowMiddle,
            DemoFault::DownstreamErrors => FaultKind::DownstreamErrors,
            DemoFault::SlowSql => FaultKind::SlowSql,
            DemoFault::NPlusOne => FaultKind::NPlusOne,
            DemoFault::BadVersion => FaultKind::BadVersion,
        }
    }
}

/// Parses `--history` into minutes.
fn history(text: &str) -> Result<i64, String> {
    let d = coral_config::parse_duration(text)?;
    let minutes = (d.as_secs() / 60) as i64;
    if !(20..=50).contains(&minutes) {
        return Err(format!(
            "{text} is outside 20m–50m: `coral ask` needs 20 minutes for a baseline, and the agent keeps one hour"
        ));
    }
    Ok(minutes)
}

/// What the banner says about the demo: the traffic and three commands.
pub(crate) struct DemoBanner {
    pub(crate) traffic: traffic::Traffic,
}

impl DemoBanner {
    /// The lines after the listeners, commands named by `coral`.
    pub(crate) fn lines(&self, coral: &str) -> Vec<String> {
        let fault = self.traffic.fault;
        let what = match fault.truth() {
            Some(t) => format!(
                "injected fault: {} ({} {}) for the last {} minutes of history, and on",
                fault.name(),
                t.service,
                t.operation,
                traffic::FAULT_MINUTES
            ),
            None => "no injected fault (try --fault slow-leaf)".to_owned(),
        };
        vec![
            format!(
                "Demo traffic: a small shop (frontend, checkout, cart, payments, fraud, inventory, …), {} minutes of history, then live; {what}.",
                self.traffic.history_minutes
            ),
            String::new(),
            "Try:".to_owned(),
            format!("  {coral} query services"),
            format!("  {coral} query traces --service checkout"),
            format!("  {coral} ask \"{}\"", fault.question("checkout", 0)),
        ]
    }
}

/// Runs `coral up` with the demo traffic.
pub async fn demo(args: DemoArgs) -> anyhow::Result<()> {
    let traffic = traffic::Traffic {
        fault: args.fault.kind(),
        history_minutes: args.history,
    };
    crate::up::run(args.up, Some(DemoBanner { traffic })).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_is_bounded_and_the_banner_names_three_commands() {
        assert_eq!(history("45m"), Ok(45));
        assert!(history("10m").unwrap_err().contains("20m–50m"));
        assert!(history("2h").is_err());
        let banner = DemoBanner {
            traffic: traffic::Traffic {
                fault: FaultKind::SlowLeaf,
                history_minutes: 45,
            },
        };
        let lines = banner.lines("coral").join("\n");
        assert!(lines.contains("card-validator"), "{lines}");
        assert!(lines.contains("  coral query services\n"));
        assert!(lines.contains("  coral ask \"why is checkout slow?\""));
    }
}
