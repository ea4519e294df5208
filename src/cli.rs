//! The command line: global options, one subcommand per pipeline step and the tools around them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const EXAMPLES: &str = "\
Examples:
  rollci run                                   # every step on ./rollci.toml, cleanup last
  rollci --config examples/demo/rollci.toml provision
  rollci deploy && rollci verify --phase before && rollci upgrade
  ROLLCI_TO_RELEASE=B rollci upgrade           # releases from the environment (Jenkins)
  rollci status --json                         # what exists, what ran, how it ended
  rollci cleanup                               # destroy everything the journal knows of";

/// Test rolling upgrades in CI: provision a lab, deploy release A, verify, upgrade to B while
/// measuring, verify again, report, and clean up exactly what was created.
#[derive(Debug, Parser)]
#[command(name = "rollci", version, after_help = format!("{EXAMPLES}\n\n{}", crate::exit::TABLE))]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// The lab file.
    #[arg(
        long,
        global = true,
        env = "ROLLCI_CONFIG",
        default_value = "rollci.toml"
    )]
    pub config: PathBuf,
    /// The workspace holding the state journal, logs and reports [default: .rollci beside
    /// the lab file].
    #[arg(long, global = true, env = "ROLLCI_WORKSPACE")]
    pub workspace: Option<PathBuf>,
    /// Release to deploy first (overrides the lab file's `from_release`).
    #[arg(long, global = true, env = "ROLLCI_FROM_RELEASE")]
    pub from_release: Option<String>,
    /// Release to upgrade to (overrides the lab file's `to_release`).
    #[arg(long, global = true, env = "ROLLCI_TO_RELEASE")]
    pub to_release: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Acquire the host, prepare it, build the lab and prepare its VMs.
    Provision,
    /// Deploy the from-release.
    Deploy,
    /// Upgrade to the to-release (all at once or rolling, as the lab says).
    Upgrade,
    /// Run the lab's verification actions before or after the upgrade.
    Verify(VerifyArgs),
    /// Write the run's summary (reports/summary.json).
    Report,
    /// Destroy every resource of the journal not yet destroyed, then say whether the flow was
    /// complete.
    Cleanup,
    /// Every step in order; cleanup always runs last.
    Run,
    /// What exists, which steps ran, with outcome and duration.
    Status(StatusArgs),
    /// Print the Ansible inventory of the current lab.
    Inventory,
    /// Check every external tool the lab needs.
    Doctor,
    /// Read a subunit v2 (or JUnit XML) results file: print its counts, convert it.
    Results(ResultsArgs),
    /// Run the lab's availability probes alone (Ctrl-C stops them; results are written).
    Monitor(MonitorArgs),
}

#[derive(Debug, Args)]
pub struct MonitorArgs {
    /// How long to probe (e.g. `30s`, `5m`); without it, until Ctrl-C.
    #[arg(long, env = "ROLLCI_DURATION", value_parser = humantime::parse_duration)]
    pub duration: Option<std::time::Duration>,
}

#[derive(Debug, Args)]
pub struct ResultsArgs {
    /// The results file (subunit v2 stream or JUnit XML; `-` for stdin).
    pub file: PathBuf,
    /// Write JUnit XML here.
    #[arg(long, env = "ROLLCI_JUNIT")]
    pub junit: Option<PathBuf>,
    /// Print the counts (and every test) as JSON instead of a line of text.
    #[arg(long, env = "ROLLCI_JSON")]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Which side of the upgrade this is.
    #[arg(long, value_enum, env = "ROLLCI_PHASE")]
    pub phase: Phase,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Phase {
    Before,
    After,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Before => "before",
            Phase::After => "after",
        }
    }
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print JSON instead of a table.
    #[arg(long, env = "ROLLCI_JSON")]
    pub json: bool,
}

impl Global {
    /// The workspace: the flag, else `.rollci/` beside the lab file.
    pub fn workspace(&self) -> PathBuf {
        if let Some(ws) = &self.workspace {
            return ws.clone();
        }
        match self.config.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.join(".rollci"),
            _ => PathBuf::from(".rollci"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn workspace_defaults_beside_the_config() {
        let cli = Cli::parse_from(["rollci", "--config", "labs/x/rollci.toml", "status"]);
        assert_eq!(cli.global.workspace(), PathBuf::from("labs/x/.rollci"));
        let cli = Cli::parse_from(["rollci", "status"]);
        assert_eq!(cli.global.workspace(), PathBuf::from(".rollci"));
    }
}
