//! `coral`: one binary for every role.
//!
//! - `coral up` — the all-in-one on this machine: a colony and an agent in one
//!   process, OTLP on 127.0.0.1:4317/4318, data under `$CORAL_HOME`.
//! - `coral demo` — the same with a built-in shop sending traffic.
//! - `coral agent serve` / `coral colony serve` — the two roles on their own.
//! - `coral agents`, `coral query otel|host` — read from a colony.
//! - `coral ask "why is checkout slow?"` — the colony's diagnosis, with
//!   evidence.
//! - `coral beyla install|check` — put Beyla where the agent finds it, and
//!   say whether this host can run it.

/// `println!` for long-running servers: a closed stdout (a supervisor or a
/// test that stopped reading) must not bring the process down.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// `eprintln!` that ignores a closed stderr (see `say!`).
macro_rules! say_err {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

mod agent;
mod ask;
mod beyla;
mod beyla_views;
mod client;
mod colony;
mod demo;
mod logging;
mod mcp;
mod migrate;
mod narrate;
mod operation_views;
mod output;
mod query;
mod suggest;
mod tap;
mod trace_views;
mod traces;
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
    /// `coral up` with a built-in demo: a small shop's services send
    /// traffic (45 minutes of history with an injected fault, then live),
    /// and the banner prints three commands to try.
    Demo(demo::DemoArgs),
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
    /// Install Beyla (eBPF auto-instrumentation) and check this host.
    Beyla {
        #[command(subcommand)]
        command: BeylaCommand,
    },
    /// Watch a service live: requests/s, P95 and errors per operation (OTLP)
    /// and per route (Beyla), and recent slow traces, saved under
    /// ./tap-sessions/ when done.
    Tap(tap::TapArgs),
    /// Print a shell completion script (e.g. `coral completions bash > /etc/bash_completion.d/coral`).
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// List the colony's agents: health, last poll, lag and gaps.
    Agents(query::AgentsArgs),
    /// Ask why a service is slow, failing or busy ("why is checkout
    /// slow?"): causes with their evidence, saved under ./evidence/.
    Ask(ask::AskArgs),
    /// Serve Coral to AI assistants over the Model Context Protocol (stdio,
    /// or Streamable HTTP with --http): coral_ask, list_services,
    /// service_red, compare_windows, list_traces, get_trace, host_metrics.
    Mcp(mcp::McpArgs),
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
    /// Copy a stopped colony's history from its DuckDB file into ClickHouse
    /// (`--to clickhouse URL`); resumable: run it again after a failure.
    Migrate(migrate::MigrateArgs),
}

#[derive(Subcommand)]
enum BeylaCommand {
    /// Unpack an official Beyla release tarball into $CORAL_HOME/bin/beyla
    /// and check that it runs.
    Install(beyla::InstallArgs),
    /// Show which Beyla binary the agent would run and what this host's
    /// kernel and capabilities allow.
    Check(beyla::CheckArgs),
}

#[derive(Subcommand)]
enum QueryCommand {
    /// 1-minute OTLP span summaries of a service (RED per minute and kind).
    Otel(query::OtelArgs),
    /// A service's span p99 next to its hosts' CPU, memory and network.
    Host(query::HostArgs),
    /// Every service in the window, with requests, errors and P95 from Beyla and OTLP.
    Services(query::ServicesArgs),
    /// One trace from every source as a tree (--trace-id), or the slowest
    /// traces of a service.
    Traces(traces::TracesArgs),
    /// Beyla RED metrics of a service (HTTP routes, gRPC methods, SQL operations).
    Beyla {
        #[command(subcommand)]
        command: BeylaQueryCommand,
    },
}

#[derive(Subcommand)]
enum BeylaQueryCommand {
    /// HTTP routes: requests, P50/P95/P99 and errors (status ≥ 500).
    Http(query::BeylaArgs),
    /// gRPC methods: calls, P50/P95/P99 and errors (status other than OK).
    Grpc(query::BeylaArgs),
    /// Database and messaging operations: queries, P50/P95/P99 and errors.
    Sql(query::BeylaArgs),
    /// `coral query traces` limited to Beyla's spans.
    Traces(traces::TracesArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Completions { shell } = cli.command {
        use clap::CommandFactory;
        clap_complete::generate(shell, &mut Cli::command(), "coral", &mut std::io::stdout());
        return ExitCode::SUCCESS;
    }
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
            Command::Demo(args) => demo::demo(args).await,
            Command::Agent {
                command: AgentCommand::Serve(args),
            } => agent::serve(args).await,
            Command::Colony {
                command: ColonyCommand::Serve(args),
            } => colony::serve(args).await,
            Command::Colony {
                command: ColonyCommand::Migrate(args),
            } => migrate::migrate(args).await,
            Command::Beyla { command } => match command {
                BeylaCommand::Install(args) => beyla::install(args).await,
                BeylaCommand::Check(args) => beyla::check(args).await,
            },
            Command::Completions { .. } => Ok(()),
            Command::Tap(args) => tap::tap(args).await,
            Command::Agents(args) => query::agents(args).await,
            Command::Ask(args) => ask::ask(args).await,
            Command::Mcp(args) => mcp::run(args).await,
            Command::Query { command } => match command {
                QueryCommand::Otel(args) => query::otel(args).await,
                QueryCommand::Host(args) => query::host(args).await,
                QueryCommand::Services(args) => query::services(args).await,
                QueryCommand::Traces(args) => traces::traces(args, false).await,
                QueryCommand::Beyla { command } => match command {
                    BeylaQueryCommand::Http(args) => {
                        query::beyla(args, beyla_views::Family::Http).await
                    }
                    BeylaQueryCommand::Grpc(args) => {
                        query::beyla(args, beyla_views::Family::Grpc).await
                    }
                    BeylaQueryCommand::Sql(args) => {
                        query::beyla(args, beyla_views::Family::Sql).await
                    }
                    BeylaQueryCommand::Traces(args) => traces::traces(args, true).await,
                },
            },
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // Errors quote names from the colony: printed as data.
            let message = format!("{error:#}");
            eprintln!("error: {}", output::printable(&message, true));
            // A question or flags the colony cannot use, like clap's usage
            // errors.
            if error.downcast_ref::<ask::UsageError>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
