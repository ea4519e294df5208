//! The lab file (TOML): what to build, how to deploy and upgrade it, what to check.
//!
//! Every table rejects unknown keys; every error names the file, the line and the key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::exit::{Kind, fail};

/// A parsed, validated lab file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub lab: Lab,
    pub provider: ProviderConfig,
    #[serde(default)]
    pub provision: Provision,
    #[serde(default)]
    pub deploy: Stage,
    pub upgrade: Upgrade,
    #[serde(default)]
    pub verify: Stage,
    /// The file it was read from (not a TOML key).
    #[serde(skip)]
    pub path: PathBuf,
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

/// `[provider]`: where hosts come from. A plain struct (not an internally tagged enum) so
/// serde keeps the span and path of every key for error messages.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    pub kind: ProviderKind,
    /// Number of API nodes (the load balancer is one more host).
    #[serde(default = "default_nodes")]
    pub nodes: u8,
    /// First loopback address: the load balancer gets it, the nodes the following ones.
    #[serde(default = "default_base_address")]
    pub base_address: std::net::Ipv4Addr,
    /// Port every host binds on its own address; 0 picks a free one at provision time.
    #[serde(default)]
    pub port: u16,
    /// Tools the lab's playbooks need besides ansible-playbook (checked by `doctor`).
    #[serde(default)]
    pub tools: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProviderKind {
    /// Loopback addresses on this machine, no root needed.
    Local,
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

/// `[deploy]` and `[verify]`: an ordered list of actions.
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

fn default_timeout() -> Duration {
    Duration::from_secs(30 * 60)
}
fn default_nodes() -> u8 {
    3
}
fn default_base_address() -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::new(127, 0, 0, 2)
}

impl Config {
    /// Reads and validates a lab file.
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            fail(
                Kind::Usage,
                format!("cannot read lab file `{}`: {e}", path.display()),
            )
        })?;
        let mut config = Self::parse(&text, path)?;
        config.path = path.to_path_buf();
        Ok(config)
    }

    /// Parses lab-file text; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> anyhow::Result<Config> {
        let de = toml::Deserializer::new(text);
        let config: Config = serde_path_to_error::deserialize(de)
            .map_err(|e| fail(Kind::Usage, describe_error(text, path, &e)))?;
        config.validate(text, path)?;
        Ok(config)
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

    fn validate(&self, text: &str, path: &Path) -> anyhow::Result<()> {
        let problem = |key: &str, msg: String| {
            let line = line_of_key(text, key);
            fail(
                Kind::Usage,
                format!("{}:{line}: `{key}`: {msg}", path.display()),
            )
        };
        check_name(&self.lab.name).map_err(|m| problem("lab.name", m))?;
        check_provider(&self.provider).map_err(|(k, m)| problem(k, m))?;
        for (key, action) in self.actions() {
            check_action(action).map_err(|m| problem(&key, m))?;
        }
        match self.upgrade.mode {
            UpgradeMode::AllAtOnce if self.upgrade.action.is_none() => Err(problem(
                "upgrade.action",
                "missing: `mode = \"all-at-once\"` needs an `[upgrade.action]`".into(),
            )),
            UpgradeMode::AllAtOnce if !self.upgrade.components.is_empty() => Err(problem(
                "upgrade.components",
                "only allowed with `mode = \"rolling\"`".into(),
            )),
            UpgradeMode::Rolling if self.upgrade.components.is_empty() => Err(problem(
                "upgrade.components",
                "missing: `mode = \"rolling\"` needs at least one `[[upgrade.components]]`".into(),
            )),
            UpgradeMode::Rolling if self.upgrade.action.is_some() => Err(problem(
                "upgrade.action",
                "only allowed with `mode = \"all-at-once\"`".into(),
            )),
            _ => Ok(()),
        }
    }
}

/// Names become file names and inventory keys: keep them plain.
fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    if ok && !name.starts_with('.') {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a valid name (letters, digits, `-`, `_`, `.`; not starting with `.`)"
        ))
    }
}

fn check_provider(p: &ProviderConfig) -> Result<(), (&'static str, String)> {
    let [first, _, _, last] = p.base_address.octets();
    if first != 127 {
        return Err((
            "provider.base_address",
            "a local lab lives on loopback: 127.x.y.z".into(),
        ));
    }
    if p.nodes == 0 {
        return Err(("provider.nodes", "must be at least 1".into()));
    }
    if u16::from(last) + u16::from(p.nodes) > 254 {
        return Err((
            "provider.base_address",
            format!("no room for {} nodes after it", p.nodes),
        ));
    }
    Ok(())
}

fn check_action(action: &Action) -> Result<(), String> {
    check_name(&action.name)?;
    match (&action.playbook, &action.command) {
        (Some(_), Some(_)) => Err("set either `playbook` or `command`, not both".into()),
        (None, None) => Err("needs a `playbook` or a `command`".into()),
        (None, Some(argv)) if argv.is_empty() => Err("`command` is an empty argv".into()),
        _ if action.timeout == Some(Duration::ZERO) => Err("`timeout` must be above 0".into()),
        _ => Ok(()),
    }
}

/// Turns a deserialization error into `file:line: `key`: message`.
fn describe_error(
    text: &str,
    path: &Path,
    err: &serde_path_to_error::Error<toml::de::Error>,
) -> String {
    let mut key = err.path().to_string();
    let inner = err.inner();
    let line = inner
        .span()
        .map(|span| line_at(text, span.start))
        .unwrap_or_else(|| line_of_key(text, &key));
    // Internally tagged tables (`[provider]`) hide the last key from the path: the
    // offending line names it.
    let assigned = text
        .lines()
        .nth(line - 1)
        .and_then(|l| l.split_once('='))
        .map(|(k, _)| k.trim());
    if let Some(name) = assigned.filter(|k| !k.is_empty() && !key.ends_with(*k)) {
        key = if key == "." {
            name.to_string()
        } else {
            format!("{key}.{name}")
        };
    }
    let message = inner.message().trim_end();
    if key == "." || key.is_empty() {
        format!("{}:{line}: {message}", path.display())
    } else {
        format!("{}:{line}: `{key}`: {message}", path.display())
    }
}

/// 1-based line number of a byte offset.
fn line_at(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Best-effort line of a dotted key path (`upgrade.components[1]`): the last table header
/// or `key =` line naming its last plain segment.
fn line_of_key(text: &str, key: &str) -> usize {
    let segments: Vec<&str> = key
        .split(['.', '['])
        .filter(|s| !s.is_empty() && !s.ends_with(']'))
        .collect();
    let Some(last) = segments.last() else {
        return 1;
    };
    let header = segments.join(".");
    let mut found = 1;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_start();
        let table = line.trim_start_matches('[').split(']').next().unwrap_or("");
        let assigned = line.split('=').next().unwrap_or("").trim();
        if (line.starts_with('[') && table.trim() == header) || assigned == *last {
            found = i + 1;
        }
    }
    found
}
