//! The command line: global options, one subcommand per pipeline step and the tools around them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::flow::Phase;

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
    /// The cloud's region (the `openstack` provider; overrides the lab file's `region`).
    #[arg(long, global = true, env = "ROLLCI_REGION")]
    pub region: Option<String>,
    /// The clouds.yaml entry (overrides the lab file's `cloud`).
    #[arg(long, global = true, env = "OS_CLOUD")]
    pub cloud: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Acquire the host, prepare it, build the lab and prepare its VMs.
    Provision(ProvisionArgs),
    /// Deploy the from-release.
    Deploy,
    /// Upgrade to the to-release (all at once or rolling, as the lab says); a re-run
    /// continues after the last component that passed in this run.
    Upgrade(UpgradeArgs),
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
    /// Servers rollci rented from a cloud (`--cloud`) whose run is over or whose expiry
    /// has passed; `--delete` removes those seen on two passes in a row.
    Strays(StraysArgs),
    /// The lab's Jenkinsfile and job config.xml; push the job, lint the Jenkinsfile.
    #[command(subcommand)]
    Jenkins(JenkinsCommand),
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
pub struct ProvisionArgs {
    /// Acquire the host(s) only (rent the server, wait for it) and stop: a later
    /// `provision` goes on from there.
    #[arg(long, env = "ROLLCI_ACQUIRE_ONLY")]
    pub acquire_only: bool,
}

#[derive(Debug, Args)]
pub struct StraysArgs {
    /// Delete the strays seen on both passes (without it: list them).
    #[arg(long, env = "ROLLCI_DELETE")]
    pub delete: bool,
    /// Time between the two passes.
    #[arg(long, default_value = "60s", env = "ROLLCI_INTERVAL", value_parser = humantime::parse_duration)]
    pub interval: std::time::Duration,
    /// The compute service's catalog name, when the catalog has several.
    #[arg(long, env = "ROLLCI_SERVICE_NAME")]
    pub service_name: Option<String>,
    /// Only servers of this lab.
    #[arg(long, env = "ROLLCI_LAB")]
    pub lab: Option<String>,
    /// Print JSON instead of lines of text.
    #[arg(long, env = "ROLLCI_JSON")]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct UpgradeArgs {
    /// Upgrade every component again, also those that passed in an earlier attempt.
    #[arg(long, env = "ROLLCI_RESTART")]
    pub restart: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Which side of the upgrade this is.
    #[arg(long, value_enum, env = "ROLLCI_PHASE")]
    pub phase: Phase,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print JSON instead of a table.
    #[arg(long, env = "ROLLCI_JSON")]
    pub json: bool,
}

/// `rollci jenkins …`: rendered from the lab file (`--config`, whose path as written is
/// the one the job uses, relative to its workspace); the `strays-*` job from flags alone.
#[derive(Debug, Subcommand)]
pub enum JenkinsCommand {
    /// Render the lab's declarative Jenkinsfile.
    Jenkinsfile(OutArgs),
    /// Render the Pipeline job's config.xml.
    JobConfig(JobConfigArgs),
    /// Create or update the job on JENKINS_URL (as JENKINS_USER with JENKINS_API_TOKEN).
    Push(PushArgs),
    /// Check the rendered Jenkinsfile with the linter of JENKINS_URL (exit 1 if refused).
    Lint,
    /// Render the Jenkinsfile of a periodic job deleting the strays of `--cloud` (in
    /// `--region`, else every region): `rollci strays --delete` on a cron schedule. No lab
    /// file.
    StraysJenkinsfile(StraysJenkinsfileArgs),
    /// Render the periodic strays job's config.xml (with its cron trigger). No lab file.
    StraysJobConfig(StraysJobConfigArgs),
}

#[derive(Debug, Args)]
pub struct OutArgs {
    /// Write here (atomically) instead of printing.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct JobConfigArgs {
    /// Write here (atomically) instead of printing.
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub source: SourceArgs,
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// The job's name (`folder/name` for a job in a folder).
    #[arg(long)]
    pub job: String,
    #[command(flatten)]
    pub source: SourceArgs,
}

/// The periodic strays job; `--cloud` (required) and `--region` are the global flags.
#[derive(Debug, Args)]
pub struct StraysJobArgs {
    /// Agent label the job runs on.
    #[arg(long, default_value = "rollci")]
    pub label: String,
    /// When the job runs (Jenkins cron syntax).
    #[arg(long, default_value = crate::jenkins::strays::DEFAULT_CRON)]
    pub cron: String,
    /// Name of the shared library as configured in Jenkins.
    #[arg(long, default_value = "rollci")]
    pub library: String,
    /// Jenkins credentials id (secret file: a clouds.yaml) bound as OS_CLIENT_CONFIG_FILE.
    #[arg(long)]
    pub clouds_credentials: Option<String>,
    /// Jenkins credentials id (username/password) bound as OS_USERNAME/OS_PASSWORD.
    #[arg(long)]
    pub cloud_credentials: Option<String>,
}

#[derive(Debug, Args)]
pub struct StraysJenkinsfileArgs {
    #[command(flatten)]
    pub job: StraysJobArgs,
    /// Write here (atomically) instead of printing.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct StraysJobConfigArgs {
    #[command(flatten)]
    pub job: StraysJobArgs,
    /// Write here (atomically) instead of printing.
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub source: SourceArgs,
}

/// Where the job reads its Jenkinsfile from: a git repository, or config.xml itself.
#[derive(Debug, Args)]
pub struct SourceArgs {
    /// Git repository the job checks the Jenkinsfile out of.
    #[arg(long, required_unless_present = "inline", conflicts_with = "inline")]
    pub scm_url: Option<String>,
    /// The Jenkinsfile's path in the repository.
    #[arg(long, default_value = "Jenkinsfile")]
    pub script_path: String,
    /// Branch to build.
    #[arg(long, default_value = "main")]
    pub branch: String,
    /// Embed the Jenkinsfile in config.xml instead (no checkout: the lab file must reach
    /// the agent some other way).
    #[arg(long)]
    pub inline: bool,
}

impl Global {
    /// Jenkins passes an empty parameter as an empty variable: that means "the lab file's".
    pub fn normalize(mut self) -> Global {
        self.from_release = self.from_release.filter(|r| !r.is_empty());
        self.to_release = self.to_release.filter(|r| !r.is_empty());
        self.region = self.region.filter(|r| !r.is_empty());
        self.cloud = self.cloud.filter(|r| !r.is_empty());
        self
    }

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
