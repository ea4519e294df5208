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

/// `[verify]`: the lab's own check actions and its smoke suite.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Verify {
    #[serde(default)]
    pub actions: Vec<Action>,
    pub smoke: Option<SmokeConfig>,
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

/// `[[probes]]`: one availability probe (a service).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeConfig {
    pub name: String,
    /// `http` (one request) or `cycle` (a sequence that must all succeed).
    #[serde(default)]
    pub kind: ProbeKind,
    /// `http` probes: the URL (see [`RequestConfig`] for the other request keys).
    pub url: Option<String>,
    #[serde(default = "default_method")]
    pub method: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub body: Option<String>,
    #[serde(default)]
    pub expect_status: Vec<u16>,
    pub body_contains: Option<String>,
    /// The requests of a `cycle` probe, in order.
    #[serde(default)]
    pub steps: Vec<RequestConfig>,
    /// Probe interval (down to 50ms).
    #[serde(default = "default_interval", with = "humantime_serde")]
    pub interval: Duration,
    /// Per-request timeout.
    #[serde(default = "default_probe_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Downtime budget; above it the upgrade fails its check (exit 1).
    #[serde(default, with = "humantime_serde")]
    pub max_downtime: Option<Duration>,
    /// One probe per host (named `name@host`, `{host}` in URLs is its address:port).
    #[serde(default)]
    pub hosts: Vec<String>,
    /// `"openstack"`: send a Keystone token (from the `OS_*` variables), renewed on 401.
    pub auth: Option<ProbeAuth>,
}

impl ProbeConfig {
    /// The requests one probe makes, in order.
    pub fn requests(&self) -> Vec<RequestConfig> {
        match (self.kind, &self.url) {
            (ProbeKind::Cycle, _) => self.steps.clone(),
            (ProbeKind::Http, Some(url)) => vec![RequestConfig {
                url: url.clone(),
                method: self.method.clone(),
                headers: self.headers.clone(),
                body: self.body.clone(),
                expect_status: self.expect_status.clone(),
                body_contains: self.body_contains.clone(),
                capture: None,
            }],
            (ProbeKind::Http, None) => Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProbeAuth {
    Openstack,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProbeKind {
    #[default]
    Http,
    Cycle,
}

/// One HTTP request. URLs may name hosts as `{lb}`, `{node1}` (address:port), `{host}` for
/// per-host probes, and values captured by an earlier cycle step as `{name}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestConfig {
    pub url: String,
    #[serde(default = "default_method")]
    pub method: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub body: Option<String>,
    /// Accepted statuses (default: any 2xx).
    #[serde(default)]
    pub expect_status: Vec<u16>,
    /// Text the response body must contain.
    pub body_contains: Option<String>,
    /// Cycle steps: a top-level JSON field of the response to use as `{field}` later.
    pub capture: Option<String>,
}

impl RequestConfig {
    /// A plain `GET` of `url` that expects the default statuses.
    pub fn get(url: impl Into<String>) -> Self {
        RequestConfig {
            url: url.into(),
            method: default_method(),
            headers: BTreeMap::new(),
            body: None,
            expect_status: vec![],
            body_contains: None,
            capture: None,
        }
    }
}

/// `[probing]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Probing {
    /// How long to probe before the first upgrade action (the latency baseline).
    #[serde(default = "default_baseline", with = "humantime_serde")]
    pub baseline: Duration,
}

impl Default for Probing {
    fn default() -> Self {
        Probing {
            baseline: default_baseline(),
        }
    }
}

/// `[jenkins]`: the generated Jenkinsfile and job.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JenkinsConfig {
    /// Agent label the pipeline runs on.
    #[serde(default = "default_agent_label")]
    pub agent_label: String,
    /// Name of the shared library (`@Library('…') _`) as configured in Jenkins.
    #[serde(default = "default_library")]
    pub library: String,
    /// Whole-build timeout.
    #[serde(default = "default_build_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Builds kept by the build discarder.
    #[serde(default = "default_keep_builds")]
    pub keep_builds: u32,
    /// Build result when the system under test fails a check (exit code 1).
    #[serde(default)]
    pub on_check_failure: CheckFailure,
    /// Jenkins credentials id (username/password) exported as `OS_USERNAME`/`OS_PASSWORD`.
    pub cloud_credentials: Option<String>,
    /// Jenkins credentials id (username/password) exported as `ROLLCI_ES_USER`/`ROLLCI_ES_PASSWORD`.
    pub es_credentials: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
pub enum CheckFailure {
    #[default]
    #[serde(rename = "UNSTABLE")]
    Unstable,
    #[serde(rename = "FAILURE")]
    Failure,
}

impl Default for JenkinsConfig {
    fn default() -> Self {
        JenkinsConfig {
            agent_label: default_agent_label(),
            library: default_library(),
            timeout: default_build_timeout(),
            keep_builds: default_keep_builds(),
            on_check_failure: CheckFailure::default(),
            cloud_credentials: None,
            es_credentials: None,
        }
    }
}

fn default_agent_label() -> String {
    "rollci".into()
}
fn default_library() -> String {
    "rollci".into()
}
fn default_build_timeout() -> Duration {
    Duration::from_secs(3 * 3600)
}
fn default_keep_builds() -> u32 {
    30
}

/// `[[persistent]]`: a resource created through the system's API before the upgrade.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersistentConfig {
    pub name: String,
    pub create: RequestConfig,
    /// Reads it back; its body (or `json_pointer` into it) is checksummed.
    pub read: RequestConfig,
    pub delete: RequestConfig,
    /// RFC 6901 pointer of the part of the read body that must not change (e.g. `/content`).
    pub json_pointer: Option<String>,
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
fn default_interval() -> Duration {
    Duration::from_millis(200)
}
fn default_probe_timeout() -> Duration {
    Duration::from_secs(2)
}
fn default_baseline() -> Duration {
    Duration::from_secs(2)
}
fn default_method() -> String {
    "GET".into()
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
        for (i, probe) in self.probes.iter().enumerate() {
            check_probe(probe).map_err(|m| problem(&format!("probes[{i}]"), m))?;
        }
        for (i, p) in self.persistent.iter().enumerate() {
            check_name(&p.name).map_err(|m| problem(&format!("persistent[{i}]"), m))?;
        }
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

fn check_probe(probe: &ProbeConfig) -> Result<(), String> {
    check_name(&probe.name)?;
    match probe.kind {
        ProbeKind::Http if probe.url.is_none() => Err("an `http` probe needs a `url`".into()),
        ProbeKind::Http if !probe.steps.is_empty() => {
            Err("`steps` belong to `kind = \"cycle\"`".into())
        }
        ProbeKind::Cycle if probe.steps.is_empty() => Err("a `cycle` probe needs `steps`".into()),
        ProbeKind::Cycle if probe.url.is_some() => {
            Err("a `cycle` probe has `steps`, not a `url`".into())
        }
        _ if probe.interval < Duration::from_millis(10) => Err("`interval` below 10ms".into()),
        _ if probe.timeout.is_zero() => Err("`timeout` must be above 0".into()),
        _ => Ok(()),
    }
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

/// Best-effort line of a key path (`upgrade.components[1]`, `lab.name`): the `[[table]]`
/// header of that index, the `[table]` header, or the `key =` line; else its parent's line.
fn line_of_key(text: &str, key: &str) -> usize {
    let mut path = key.to_string();
    loop {
        if let Some(line) = find_key(text, &path) {
            return line;
        }
        match path.rfind(['.', '[']) {
            Some(cut) => path.truncate(cut),
            None => return 1,
        }
    }
}

fn find_key(text: &str, path: &str) -> Option<usize> {
    let (table, index) = match path.strip_suffix(']').and_then(|p| p.rsplit_once('[')) {
        Some((table, index)) => (table, index.parse::<usize>().ok()),
        None => (path, None),
    };
    let headers = text.lines().enumerate().filter(|(_, l)| {
        let l = l.trim();
        l.starts_with('[') && l.trim_matches(['[', ']']).trim() == table
    });
    if let Some((line, _)) = headers.clone().nth(index.unwrap_or(0)) {
        return Some(line + 1);
    }
    let (parent, leaf) = table.rsplit_once('.').unwrap_or(("", table));
    let in_parent = |l: &str| l.split('=').next().is_some_and(|k| k.trim() == leaf);
    let mut current = String::new();
    for (i, line) in text.lines().enumerate() {
        let l = line.trim();
        if l.starts_with('[') {
            current = l.trim_matches(['[', ']']).trim().to_string();
        } else if current == parent && in_parent(l) {
            return Some(i + 1);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "[lab]\nname = \"x\"\n\n[[deploy.actions]]\nname = \"a\"\n\n[[deploy.actions]]\nname = \"b\"\n\n[upgrade]\nmode = \"rolling\"\n";

    #[test]
    fn key_lines_are_found_by_index_and_parent() {
        assert_eq!(line_of_key(TEXT, "lab.name"), 2);
        assert_eq!(line_of_key(TEXT, "deploy.actions[0]"), 4);
        assert_eq!(line_of_key(TEXT, "deploy.actions[1]"), 7);
        assert_eq!(line_of_key(TEXT, "upgrade.mode"), 11);
        assert_eq!(
            line_of_key(TEXT, "upgrade.components"),
            10,
            "falls back to the parent table"
        );
        assert_eq!(line_of_key(TEXT, "nothing.here"), 1);
    }

    #[test]
    fn an_action_with_both_playbook_and_command_is_refused_with_its_line() {
        let text = format!(
            "{}\n[[deploy.actions]]\nname = \"c\"\nplaybook = \"p.yml\"\ncommand = [\"true\"]\n",
            "[lab]\nname = \"x\"\nfrom_release = \"A\"\nto_release = \"B\"\n[provider]\nkind = \"local\"\n[upgrade]\nmode = \"all-at-once\"\naction = { name = \"u\", command = [\"true\"] }\n"
        );
        let err = Config::parse(&text, Path::new("lab.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("lab.toml:11: `deploy.actions[0]`: set either"),
            "{err}"
        );
    }
}
