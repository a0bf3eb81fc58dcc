//! `coral`: one binary for every role.
//!
//! - `coral up` — the all-in-one on this machine (today: the agent with its
//!   OTLP endpoints and DuckDB store under `$CORAL_HOME`).
//! - `coral agent serve` — a Coral agent.

mod agent;
mod logging;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Coral: RED metrics and traces for every service, with evidence.
#[derive(Parser)]
#[command(name = "coral", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run Coral on this machine: an agent with OTLP on 127.0.0.1:4317 (gRPC)
    /// and 127.0.0.1:4318 (HTTP), data under $CORAL_HOME (default ~/.coral).
    Up(agent::ServeArgs),
    /// Run and manage the Coral agent.
    Agent {
        #[command(subcommand)]
        command: AgentCommand,
    },
}

#[derive(Subcommand)]
enum AgentCommand {
    /// Run the agent until Ctrl-C or SIGTERM.
    Serve(agent::ServeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Up(args) => agent::serve(args, true).await,
            Command::Agent {
                command: AgentCommand::Serve(args),
            } => agent::serve(args, false).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
