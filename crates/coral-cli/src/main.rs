//! `coral`: one binary for every role.
//!
//! - `coral up` — the all-in-one on this machine: a colony and an agent in one
//!   process, OTLP on 127.0.0.1:4317/4318, data under `$CORAL_HOME`.
//! - `coral agent serve` / `coral colony serve` — the two roles on their own.
//! - `coral agents`, `coral query otel|host` — read from a colony.

mod agent;
mod client;
mod colony;
mod logging;
mod output;
mod query;
mod up;
mod views;

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
    /// Run Coral on this machine: a colony and an agent with OTLP on
    /// 127.0.0.1:4317 (gRPC) and 127.0.0.1:4318 (HTTP), data under
    /// $CORAL_HOME (default ~/.coral).
    Up(up::UpArgs),
    /// Run and manage the Coral agent.
    Agent {
        #[command(subcommand)]
        command: AgentCommand,
    },
    /// Run the Coral colony.
    Colony {
        #[command(subcommand)]
        command: ColonyCommand,
    },
    /// List the colony's agents: health, last poll, lag and gaps.
    Agents(query::AgentsArgs),
    /// Query the colony.
    Query {
        #[command(subcommand)]
        command: QueryCommand,
    },
}

#[derive(Subcommand)]
enum AgentCommand {
    /// Run the agent until Ctrl-C or SIGTERM.
    Serve(agent::ServeArgs),
}

#[derive(Subcommand)]
enum ColonyCommand {
    /// Run the colony until Ctrl-C or SIGTERM.
    Serve(colony::ColonyServeArgs),
}

#[derive(Subcommand)]
enum QueryCommand {
    /// 1-minute OTLP span summaries of a service (RED per minute and kind).
    Otel(query::OtelArgs),
    /// A service's span p99 next to its hosts' CPU, memory and network.
    Host(query::HostArgs),
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
            Command::Up(args) => up::up(args).await,
            Command::Agent {
                command: AgentCommand::Serve(args),
            } => agent::serve(args).await,
            Command::Colony {
                command: ColonyCommand::Serve(args),
            } => colony::serve(args).await,
            Command::Agents(args) => query::agents(args).await,
            Command::Query { command } => match command {
                QueryCommand::Otel(args) => query::otel(args).await,
                QueryCommand::Host(args) => query::host(args).await,
            },
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
