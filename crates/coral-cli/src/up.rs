//! `coral up`: a colony and an agent in one process, the agent registered
//! with the colony, both databases under `$CORAL_HOME`. The banner's
//! commands name this executable by its full path when `coral` on `$PATH`
//! is something else (or nothing), so they run as printed.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::Path;

use clap::Args;

use crate::agent::ServeArgs;
use crate::colony::ColonyServeArgs;
use crate::demo::DemoBanner;

/// Poll interval of the all-in-one (unless configured): data shows up in
/// queries within seconds of the minute closing.
pub const UP_POLL_INTERVAL: &str = "5s";

/// Options of `coral up`.
#[derive(Args, Debug, Default)]
pub struct UpArgs {
    #[command(flatten)]
    agent: ServeArgs,
    /// Colony configuration file (YAML).
    #[arg(long, value_name = "FILE")]
    colony_config: Option<std::path::PathBuf>,
    /// Colony API listen address (default 127.0.0.1:9000).
    #[arg(long, value_name = "HOST:PORT")]
    colony_api_endpoint: Option<String>,
    /// Colony admin listen address: /metrics, /metrics/red, /healthz
    /// (default 127.0.0.1:9003).
    #[arg(long, value_name = "HOST:PORT")]
    colony_admin_endpoint: Option<String>,
    /// Serve RED per service and operation for Prometheus at the colony's
    /// /metrics/red.
    #[arg(long)]
    red_metrics: bool,
}

/// Runs colony and agent until a signal, then stops both in order.
pub async fn up(args: UpArgs) -> anyhow::Result<()> {
    run(args, None).await
}

/// `coral up`, with the demo's traffic when `demo` is given (`coral demo`).
pub(crate) async fn run(args: UpArgs, demo: Option<DemoBanner>) -> anyhow::Result<()> {
    let signal = crate::agent::shutdown_signal();
    let env: HashMap<String, String> = std::env::vars().collect();
    let poll_interval =
        (!env.contains_key("CORAL_POLL_INTERVAL")).then(|| UP_POLL_INTERVAL.to_owned());
    let colony_args = ColonyServeArgs {
        config: args.colony_config,
        api_endpoint: args.colony_api_endpoint,
        admin_endpoint: args.colony_admin_endpoint,
        red_metrics: args.red_metrics,
        poll_interval,
        ..Default::default()
    };
    let colony_config = colony_args.load(&env)?;
    let mut agent_args = args.agent;
    let log = agent_args.log_overrides();
    let level = log
        .1
        .clone()
        .unwrap_or_else(|| colony_config.log.level.clone());
    crate::logging::init(log.0.unwrap_or(colony_config.log.format), &level)?;
    // The start errors print their cause in their own message: say it once.
    let colony = coral_colony::start(&colony_config).await.map_err(|error| {
        anyhow::anyhow!(
            "cannot start the coral colony: {}",
            crate::output::error_once(&error)
        )
    })?;
    agent_args.colony_endpoint = Some(format!("http://{}", colony.addr));
    let mut options = agent_args.options(&env);
    options.colony_ports = vec![colony.addr.port()];
    let agent_config = match agent_args.load(&env) {
        Ok(config) => config,
        Err(error) => {
            colony.shutdown().await;
            return Err(error);
        }
    };
    let agent = match coral_agent::start_with(&agent_config, options).await {
        Ok(agent) => agent,
        Err(error) => {
            colony.shutdown().await;
            return Err(anyhow::anyhow!(
                "cannot start the coral agent: {}",
                crate::output::error_once(&error)
            ));
        }
    };
    let a = agent.addrs;
    if demo.is_some() && a.otlp_grpc.is_none() {
        agent.shutdown().await;
        colony.shutdown().await;
        anyhow::bail!(
            "coral demo sends its traffic over OTLP/gRPC, but the agent's OTLP receiver is off (agent.telemetry.enabled: false in the config, or CORAL_TELEMETRY_ENABLED=false); turn it on, or run `coral up`"
        );
    }
    say!(
        "Coral is running: colony {} and agent {}.",
        colony_config.colony_id,
        agent_config.agent_id
    );
    say!(
        "  data:        {}",
        colony_config
            .data_dir
            .parent()
            .unwrap_or(&colony_config.data_dir)
            .display()
    );
    if let (Some(grpc), Some(http)) = (a.otlp_grpc, a.otlp_http) {
        say!("  OTLP gRPC:   {grpc}");
        say!("  OTLP HTTP:   http://{http}");
    }
    say!("  colony API:  {}", colony.addr);
    say!("  agent API:   {}", a.api);
    say!("  metrics:     http://{}/metrics (agent)", a.admin);
    say!(
        "               http://{}/metrics (colony){}",
        colony.admin_addr,
        if colony_config.admin.red_metrics {
            format!(", http://{}/metrics/red (RED)", colony.admin_addr)
        } else {
            String::new()
        }
    );
    let coral = std::env::current_exe()
        .map(|exe| command_name(&exe, std::env::var_os("PATH").as_deref()))
        .unwrap_or_else(|_| "coral".into());
    let beyla = crate::agent::beyla_line(&agent);
    say!("  {}", beyla.replace("`coral ", &format!("`{coral} ")));
    let traffic_stop = tokio_util::sync::CancellationToken::new();
    let mut traffic = None;
    if let (Some(demo), Some(grpc)) = (&demo, a.otlp_grpc) {
        traffic = Some(tokio::spawn(crate::demo::traffic::run(
            demo.traffic,
            format!("http://{grpc}"),
            traffic_stop.clone(),
        )));
        say!();
        for line in demo.lines(&coral) {
            say!("{line}");
        }
    } else if let Some(grpc) = a.otlp_grpc {
        say!();
        say!("Point an OpenTelemetry SDK at it:");
        say!("  export OTEL_EXPORTER_OTLP_ENDPOINT=http://{grpc}");
        say!("  export OTEL_EXPORTER_OTLP_PROTOCOL=grpc");
    }
    if demo.is_none() {
        say!();
        say!(
            "Then: {coral} agents · {coral} query otel <service> · {coral} ask \"why is <service> slow?\""
        );
    }
    if coral != "coral" {
        say!(
            "  (to type just `coral`: `cargo install --locked --path crates/coral-cli`, with ~/.cargo/bin on PATH)"
        );
    }
    say!("Press Ctrl-C to stop.");
    signal.await;
    say_err!("shutting down: flushing open minutes and closing the databases…");
    traffic_stop.cancel();
    if let Some(traffic) = traffic {
        let _ = traffic.await;
    }
    agent.shutdown().await;
    colony.shutdown().await;
    Ok(())
}

/// How to invoke `exe` from a shell: `coral` when that is what `coral`
/// resolves to on `path_var`, else `exe`'s full path (quoted when it holds
/// characters a shell would split or expand).
pub fn command_name(exe: &Path, path_var: Option<&OsStr>) -> String {
    let real = |p: &Path| std::fs::canonicalize(p).ok();
    let on_path = path_var.and_then(|paths| {
        std::env::split_paths(paths)
            .filter(|dir| !dir.as_os_str().is_empty())
            .map(|dir| dir.join("coral"))
            .find(|candidate| is_executable(candidate))
    });
    if let (Some(found), Some(me)) = (on_path.as_deref().and_then(real), real(exe))
        && found == me
    {
        return "coral".into();
    }
    let text = exe.display().to_string();
    if text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+:@%,".contains(c))
    {
        text
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn banner_commands_use_the_full_path_unless_path_finds_this_binary() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("target/release/coral");
        std::fs::create_dir_all(exe.parent().unwrap()).unwrap();
        std::fs::write(&exe, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        let full = exe.display().to_string();
        // Not on PATH at all.
        assert_eq!(command_name(&exe, None), full);
        let empty = dir.path().join("empty");
        std::fs::create_dir_all(&empty).unwrap();
        assert_eq!(command_name(&exe, Some(empty.as_os_str())), full);
        // Another `coral` comes first on PATH.
        let other = dir.path().join("other");
        std::fs::create_dir_all(&other).unwrap();
        std::fs::copy(&exe, other.join("coral")).unwrap();
        let path = std::env::join_paths([&other, &empty]).unwrap();
        assert_eq!(command_name(&exe, Some(&path)), full);
        // PATH finds this very binary (here through a symlink).
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::os::unix::fs::symlink(&exe, bin.join("coral")).unwrap();
        let path = std::env::join_paths([&bin, &other]).unwrap();
        assert_eq!(command_name(&exe, Some(&path)), "coral");
        // A path a shell would split is quoted.
        let spaced = dir.path().join("my dir/coral");
        assert_eq!(
            command_name(&spaced, None),
            format!("'{}'", spaced.display())
        );
    }
}
