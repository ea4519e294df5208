//! The lab file (TOML): what to build, how to deploy and upgrade it, what to check.
//!
//! Every table rejects unknown keys; every error names the file, the line and the key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::exit::{Kind, fail};

mod jenkins;
mod locate;
mod logs;
mod probes;
pub mod validate;

pub use jenkins::{CheckFailure, JenkinsConfig};
pub use logs::LogsConfig;
pub use probes::{
    Connection, PersistentConfig, ProbeAuth, ProbeConfig, ProbeKind, Probing, RequestConfig,
};

/// A parsed, validated lab file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub lab: Lab,
    pub provider: ProviderSection,
    #[serde(default)]
    pub provision: Provision,
    #[serde(default)]
    pub deploy: Stage,
    pub upgrade: Upgrade,
    #[serde(default)]
    pub verify: Verify,
    /// Availability probes run during the upgrade (and by `rollci monitor`).
    #[serde(default)]
    pub probes: Vec<ProbeConfig>,
    /// Settings shared by all probes.
    #[serde(default)]
    pub probing: Probing,
    /// Resources created before the upgrade and checked after it.
    #[serde(default)]
    pub persistent: Vec<PersistentConfig>,
    /// How the lab's Jenkins job and Jenkinsfile are generated.
    #[serde(default)]
    pub jenkins: JenkinsConfig,
    /// The hosts' log files kept before teardown.
    pub logs: Option<LogsConfig>,
    /// The file it was read from (not a TOML key).
    #[serde(skip)]
    pub path: PathBuf,
    /// Its text, so that later checks (a provider's) can name the line of a key.
    #[serde(skip)]
    pub source: String,
    /// Values of the run given as flags or `ROLLCI_*` variables (not TOML keys).
    #[serde(skip)]
    pub run: RunParams,
}

/// What Jenkins passes per build besides the releases: the cloud and its region.
#[derive(Debug, Clone, Default)]
pub struct RunParams {
    pub cloud: Option<String>,
    pub region: Option<String>,
}

/// `[lab]`: names and releases.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lab {
    pub name: String,
    pub from_release: String,
    pub to_release: String,
    /// Default timeout of an action that sets none.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub default_timeout: Duration,
}

/// `[provider]`: where hosts come from. `kind` names the provider; the other keys belong
/// to it, and it parses and validates them (see [`crate::provider::from_config`]), so a new
/// provider needs no change here.
#[derive(Debug, Clone, Deserialize)]
pub struct ProviderSection {
    pub kind: String,
    #[serde(flatten)]
    pub settings: toml::Table,
}

/// `[provision]`: the seed's three stages of building a lab, each a list of actions.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provision {
    /// Host preparation (the seed retries it up to 5 times).
    #[serde(default)]
    pub host: Vec<Action>,
    /// Building the lab on the host (networks, VMs); on failure: destroy them, retry once.
    #[serde(default)]
    pub lab: Vec<Action>,
    /// Preparing the VMs for the from-release; on failure: destroy the virtual resources.
    #[serde(default)]
    pub vms: Vec<Action>,
}

/// `[verify]`: the lab's own check actions and its smoke suite.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Verify {
    #[serde(default)]
    pub actions: Vec<Action>,
    pub smoke: Option<SmokeConfig>,
    pub rally: Option<RallyConfig>,
}

/// `[verify.rally]`: a load run (Rally, the seed's Rally VM) whose JSON report
/// (`rally task report --json`) is read in both phases; after the upgrade, each workload's
/// duration is compared with before.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RallyConfig {
    /// argv; it must write the report to `$ROLLCI_RALLY_REPORT` (a path rollci chooses).
    pub command: Vec<String>,
    /// Largest allowed after/before ratio of a workload's `metric` (e.g. 1.5).
    #[serde(default = "default_max_slowdown")]
    pub max_slowdown: f64,
    /// The duration statistic compared: `median`, `p90`, `p95`, `avg` or `max`.
    #[serde(default)]
    pub metric: RallyMetric,
    /// A slowdown smaller than this in absolute terms is noise, whatever its ratio.
    #[serde(default = "default_noise_floor", with = "humantime_serde")]
    pub noise_floor: Duration,
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
}

fn default_max_slowdown() -> f64 {
    2.0
}

fn default_noise_floor() -> Duration {
    Duration::from_millis(20)
}

/// A duration statistic of Rally's report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RallyMetric {
    #[default]
    Median,
    P90,
    P95,
    Avg,
    Max,
}

impl RallyMetric {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Median => "median",
            Self::P90 => "p90",
            Self::P95 => "p95",
            Self::Avg => "avg",
            Self::Max => "max",
        }
    }
}

/// `[verify.smoke]`: a test command whose results are a subunit v2 stream or JUnit XML.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmokeConfig {
    /// argv; rollci's variables arrive as `ROLLCI_*` environment variables.
    pub command: Vec<String>,
    /// Where the results are: `"stdout"` (default) or a file path the command writes.
    #[serde(default = "default_results")]
    pub results: String,
    /// Most failed tests allowed in a phase before the pipeline stops.
    #[serde(default)]
    pub max_failures: u64,
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
}

/// `[deploy]`: an ordered list of actions.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    #[serde(default)]
    pub actions: Vec<Action>,
}

/// `[upgrade]`: all at once (one action) or rolling (one action per component, in order).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upgrade {
    pub mode: UpgradeMode,
    /// The single action of `mode = "all-at-once"`.
    pub action: Option<Action>,
    /// The components of `mode = "rolling"`, upgraded in this order.
    #[serde(default)]
    pub components: Vec<Action>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpgradeMode {
    AllAtOnce,
    Rolling,
}

/// One thing to run: an Ansible playbook or a command given as argv.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Action {
    pub name: String,
    /// Playbook path, relative to the lab file's folder.
    pub playbook: Option<PathBuf>,
    /// A command as argv (never run through a shell); the rollci variables arrive as
    /// `ROLLCI_*` environment variables.
    pub command: Option<Vec<String>>,
    /// Extra variables for the playbook (passed as one JSON `-e` argument).
    #[serde(default)]
    pub extra_vars: BTreeMap<String, toml::Value>,
    /// How many times to try again after a failed attempt.
    #[serde(default)]
    pub retries: u32,
    /// Pause between attempts.
    #[serde(default, with = "humantime_serde")]
    pub retry_delay: Option<Duration>,
    /// Per-attempt timeout; the whole process group is killed when it runs out.
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
    /// What to tear down after a failed attempt (rebuilt before the next one).
    #[serde(default)]
    pub on_failure: Teardown,
}

/// What a failed action destroys.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Teardown {
    /// Nothing: the resources stay for the next attempt or for `cleanup`.
    #[default]
    None,
    /// VMs, networks and lab state, in that order (the host stays).
    Virtual,
    /// Everything, the host included.
    Host,
}

fn default_results() -> String {
    "stdout".into()
}
fn default_timeout() -> Duration {
    Duration::from_secs(30 * 60)
}

impl Config {
    /// Reads and validates a lab file.
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let bytes = std::fs::read(path).map_err(|e| {
            fail(
                Kind::Usage,
                format!("cannot read lab file `{}`: {e}", path.display()),
            )
        })?;
        let text = String::from_utf8(bytes).map_err(|e| {
            fail(
                Kind::Usage,
                locate::not_utf8(path, e.as_bytes(), e.utf8_error()),
            )
        })?;
        Self::parse(&text, path)
    }

    /// Parses lab-file text; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> anyhow::Result<Config> {
        let de = toml::Deserializer::new(text);
        let mut config: Config = serde_path_to_error::deserialize(de)
            .map_err(|e| fail(Kind::Usage, locate::describe_error(text, path, &e)))?;
        config.path = path.to_path_buf();
        config.source = text.to_string();
        config.validate()?;
        Ok(config)
    }

    /// A usage error about `key` (a dotted path such as `provider.nodes`), naming the file
    /// and the key's line.
    pub fn problem(&self, key: &str, message: impl std::fmt::Display) -> anyhow::Error {
        let line = locate::line_of_key(&self.source, key);
        fail(
            Kind::Usage,
            format!("{}:{line}: `{key}`: {message}", self.path.display()),
        )
    }

    /// Deserializes the table under `key` (e.g. a provider's settings) into its own type,
    /// with errors naming the file, the line and the full key.
    pub fn section<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
        table: toml::Table,
    ) -> anyhow::Result<T> {
        serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
            let inner = e.path().to_string();
            let full = if inner == "." {
                key.to_string()
            } else {
                format!("{key}.{inner}")
            };
            let message = e.into_inner().to_string();
            self.problem(&full, message.trim_end())
        })
    }

    /// The folder playbook paths are relative to.
    pub fn base_dir(&self) -> PathBuf {
        let parent = self.path.parent().unwrap_or(Path::new("."));
        if parent.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            parent.to_path_buf()
        }
    }

    /// Every action of the lab, with the key path it was configured under.
    pub fn actions(&self) -> Vec<(String, &Action)> {
        let mut all = Vec::new();
        let lists: [(&str, &Vec<Action>); 5] = [
            ("provision.host", &self.provision.host),
            ("provision.lab", &self.provision.lab),
            ("provision.vms", &self.provision.vms),
            ("deploy.actions", &self.deploy.actions),
            ("verify.actions", &self.verify.actions),
        ];
        for (key, list) in lists {
            all.extend(
                list.iter()
                    .enumerate()
                    .map(|(i, a)| (format!("{key}[{i}]"), a)),
            );
        }
        if let Some(action) = &self.upgrade.action {
            all.push(("upgrade.action".to_string(), action));
        }
        let comps = self.upgrade.components.iter().enumerate();
        all.extend(comps.map(|(i, a)| (format!("upgrade.components[{i}]"), a)));
        all
    }
}
