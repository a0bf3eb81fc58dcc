//! `coral beyla install <tarball>` and `coral beyla check`: put a Beyla
//! release where the agent finds it, and say whether Beyla can run here.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use coral_beyla::caps::{HostReadings, Mode, assess};
use coral_beyla::locate::{self, Search};

/// Options of `coral beyla install`.
#[derive(Args, Debug)]
pub struct InstallArgs {
    /// An official release tarball, `beyla-linux-<amd64|arm64>-<tag>.tar.gz`
    /// (from https://github.com/grafana/beyla/releases).
    #[arg(value_name = "TARBALL")]
    tarball: PathBuf,
}

/// Options of `coral beyla check`.
#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Agent configuration file whose `beyla:` section to check.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
}

fn coral_home(env: &HashMap<String, String>) -> anyhow::Result<PathBuf> {
    coral_config::coral_home(env)
        .context("neither CORAL_HOME nor HOME is set: set CORAL_HOME to where Coral keeps its data")
}

/// Installs Beyla into `$CORAL_HOME/bin/beyla`.
pub async fn install(args: InstallArgs) -> anyhow::Result<()> {
    let env: HashMap<String, String> = std::env::vars().collect();
    let home = coral_home(&env)?;
    let tarball = args.tarball.clone();
    let path = tokio::task::spawn_blocking(move || coral_beyla::install::install(&tarball, &home))
        .await
        .context("the install task failed")??;
    let version = locate::version(&path)
        .await
        .unwrap_or_else(|| "unknown version".into());
    println!("Installed Beyla {version} at {}.", path.display());
    println!(
        "The agent uses it from its next start (BEYLA_PATH and beyla.binary still take precedence)."
    );
    println!("Check this host with: coral beyla check");
    Ok(())
}

/// Prints where Beyla would be found and what this host allows.
pub async fn check(args: CheckArgs) -> anyhow::Result<()> {
    let env: HashMap<String, String> = std::env::vars().collect();
    let config = coral_config::AgentConfig::load(
        args.config.as_deref(),
        &env,
        &coral_config::AgentOverrides::default(),
    )?;
    let beyla = &config.beyla;
    let mut ok = beyla.enabled;
    if !beyla.enabled {
        println!("beyla.enabled is false: the agent will not run Beyla.");
    }
    match locate::locate(&Search::from_env(beyla.binary.clone(), coral_home(&env)?)) {
        Ok(found) => {
            let version = locate::version(&found.path)
                .await
                .unwrap_or_else(|| "unknown version".into());
            println!(
                "Binary:  {} ({version}, found by {})",
                found.path.display(),
                found.source
            );
        }
        Err(error) => {
            ok = false;
            println!("Binary:  not found: {error}");
            println!(
                "         Install one with: coral beyla install beyla-linux-<arch>-<tag>.tar.gz"
            );
        }
    }
    let readings =
        HostReadings::read().context("cannot read this host's kernel and capabilities")?;
    let protocols: Vec<String> = beyla
        .protocols
        .enabled()
        .into_iter()
        .map(str::to_owned)
        .collect();
    let a = assess(&readings, &protocols);
    println!(
        "Kernel:  {} (BTF {})",
        readings.kernel_release,
        if readings.btf { "present" } else { "missing" }
    );
    println!(
        "Caps:    {}",
        if a.capabilities.is_empty() {
            "none of CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_SYS_PTRACE".to_owned()
        } else {
            a.capabilities.join(", ")
        }
    );
    println!("Mode:    {}", a.summary);
    if !a.reason.is_empty() && a.mode != Mode::Full {
        println!("Why:     {}", a.reason);
    }
    if a.mode == Mode::Disabled {
        ok = false;
    }
    if ok {
        println!(
            "\nThe agent will run Beyla for: {}.",
            a.protocols.join(", ")
        );
        Ok(())
    } else {
        anyhow::bail!(
            "Beyla cannot run on this host as configured (see above); the agent still collects OTLP"
        )
    }
}
