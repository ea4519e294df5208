//! The `openstack` provider's `[provider]` settings: which cloud, which server, how long to
//! wait, how often to retry; the credentials stay in clouds.yaml or the `OS_*` variables.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::config::Config;
use crate::config::validate::check_name;

/// The `kind` that selects this provider.
pub const KIND: &str = "openstack";

/// `[provider]` with `kind = "openstack"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The clouds.yaml entry (`--cloud` and `OS_CLOUD` win); none: the `OS_*` variables.
    pub cloud: Option<String>,
    /// The default region (`--region`, `ROLLCI_REGION` win; then clouds.yaml's).
    pub region: Option<String>,
    /// The compute service's catalog name, when the catalog has several.
    pub service_name: Option<String>,
    /// Timeout of one API request.
    #[serde(default = "default_api_timeout", with = "humantime_serde")]
    pub api_timeout: Duration,
    /// How long a server may take to become ACTIVE.
    #[serde(default = "default_active_wait", with = "humantime_serde")]
    pub active_wait: Duration,
    /// How long a deleted server may take to disappear.
    #[serde(default = "default_delete_wait", with = "humantime_serde")]
    pub delete_wait: Duration,
    /// Servers tried in all: one that goes to ERROR or is late is deleted, then another is
    /// created (quota and "no valid host" are not retried).
    #[serde(default = "default_attempts")]
    pub attempts: u32,
    #[serde(default = "default_retry_delay", with = "humantime_serde")]
    pub retry_delay: Duration,
    /// `rollci strays` deletes a server of the lab this long after its creation, even
    /// when no cleanup ran.
    #[serde(default = "default_expire_after", with = "humantime_serde")]
    pub expire_after: Duration,
    /// `ssh`: provision waits until the server answers over ssh (and cloud-init, when
    /// asked); `none`: rollci never connects to it (a later action reaches it its own way).
    #[serde(default)]
    pub reach: Reach,
    /// How long provision waits for ssh once the server is ACTIVE.
    #[serde(default = "default_ssh_wait", with = "humantime_serde")]
    pub wait: Duration,
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    #[serde(default = "default_persist", with = "humantime_serde")]
    pub control_persist: Duration,
    #[serde(default)]
    pub cloud_init: bool,
    /// Send rollci's own probes through a SOCKS5 tunnel to the server (`ssh -N -D`).
    #[serde(default)]
    pub tunnel: bool,
    pub server: ServerEntry,
    /// VMs on the server: a `libvirt` provider's settings (`[provider.libvirt]`, with
    /// `[[provider.libvirt.vms]]`) whose parent is the server.
    pub libvirt: Option<toml::Table>,
    /// Those settings, parsed (not a key of the lab file).
    #[serde(skip)]
    pub vms: Option<crate::provider::libvirt::Settings>,
    /// Tools the lab's playbooks need besides ansible-playbook (checked by `doctor`).
    #[serde(default)]
    pub tools: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Reach {
    #[default]
    Ssh,
    None,
}

/// `[provider.server]`: the Nova server, which is the lab's host.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerEntry {
    /// The host's name in the lab (inventory, probes); the server is `rollci-<run>-<name>`.
    pub name: String,
    /// Flavor name or id.
    pub flavor: String,
    /// Image name or id.
    pub image: String,
    /// Network ids to attach (`networks: [{uuid}]`); none: the cloud's default.
    #[serde(default)]
    pub networks: Vec<String>,
    /// The network whose address rollci connects to (e.g. `public`); none: the access
    /// address, else the first of `ip_version`.
    pub network: Option<String>,
    #[serde(default = "default_ip_version")]
    pub ip_version: u8,
    /// The Nova key pair installed on the server.
    pub key_name: Option<String>,
    /// The private key of that pair (relative to the lab file).
    pub key: Option<PathBuf>,
    #[serde(default = "default_user")]
    pub user: String,
    #[serde(default = "default_port")]
    pub port: u16,
    /// A cloud-init user-data file (relative to the lab file).
    pub user_data: Option<PathBuf>,
    pub availability_zone: Option<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    /// More metadata for the server (strings); `rollci_*` keys are rollci's own.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

impl Settings {
    /// Parses and checks the settings, with errors naming the lab file's line and key.
    pub fn parse(config: &Config, table: toml::Table) -> anyhow::Result<Settings> {
        let mut settings: Settings = config.section("provider", table)?;
        settings
            .check()
            .map_err(|(key, m)| config.problem(&key, m))?;
        if let Some(table) = settings.libvirt.take() {
            let vms =
                crate::provider::libvirt::Settings::parse_at(config, "provider.libvirt", table)?;
            if vms.parent.is_some() || vms.host.is_some() || vms.tunnel {
                return Err(config.problem(
                    "provider.libvirt",
                    "the VMs' parent is the server: no `parent`, `host` or `tunnel` here",
                ));
            }
            if settings.reach == Reach::None {
                return Err(config.problem(
                    "provider.libvirt",
                    "VMs on the server need `reach = \"ssh\"`",
                ));
            }
            settings.vms = Some(vms);
        }
        let base = std::path::absolute(config.base_dir())?;
        let server = &mut settings.server;
        server.key = server.key.take().map(|k| base.join(k));
        server.user_data = server.user_data.take().map(|k| base.join(k));
        Ok(settings)
    }

    fn check(&self) -> Result<(), (String, String)> {
        let s = &self.server;
        check_name(&s.name).map_err(|m| ("provider.server".to_string(), m))?;
        for group in &s.groups {
            check_name(group).map_err(|m| ("provider.server".to_string(), m))?;
        }
        if !matches!(s.ip_version, 4 | 6) {
            return Err((
                "provider.server.ip_version".into(),
                format!("`{}`: 4 or 6", s.ip_version),
            ));
        }
        if s.user.is_empty()
            || !s
                .user
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            return Err((
                "provider.server.user".into(),
                format!("`{}` is not a plain user name", s.user),
            ));
        }
        if let Some(bad) = s
            .metadata
            .iter()
            .find(|(k, v)| k.starts_with("rollci_") || k.len() > 255 || v.len() > 255)
        {
            return Err((
                "provider.server.metadata".into(),
                format!(
                    "`{}`: keys starting `rollci_` are rollci's own; keys and values hold at most 255 characters",
                    bad.0
                ),
            ));
        }
        if self.tunnel && self.reach == Reach::None {
            return Err((
                "provider.tunnel".into(),
                "a tunnel needs `reach = \"ssh\"`".into(),
            ));
        }
        if self.attempts == 0 {
            return Err(("provider.attempts".into(), "at least 1".into()));
        }
        if s.key.as_ref().is_some_and(|k| {
            k.to_string_lossy()
                .chars()
                .any(|c| c.is_control() || c == '"')
        }) {
            return Err((
                "provider.server.key".into(),
                "the path holds a quote or a control character".into(),
            ));
        }
        Ok(())
    }
}

fn default_api_timeout() -> Duration {
    Duration::from_secs(60)
}

fn default_active_wait() -> Duration {
    Duration::from_secs(30 * 60)
}

fn default_delete_wait() -> Duration {
    Duration::from_secs(10 * 60)
}

fn default_attempts() -> u32 {
    3
}

fn default_retry_delay() -> Duration {
    Duration::from_secs(30)
}

fn default_expire_after() -> Duration {
    Duration::from_secs(24 * 3600)
}

fn default_ssh_wait() -> Duration {
    Duration::from_secs(15 * 60)
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_persist() -> Duration {
    Duration::from_secs(600)
}

fn default_ip_version() -> u8 {
    4
}

fn default_user() -> String {
    "root".into()
}

fn default_port() -> u16 {
    22
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(provider: &str) -> anyhow::Result<Settings> {
        let text = format!(
            "[lab]\nname = \"t\"\nfrom_release = \"A\"\nto_release = \"B\"\n[upgrade]\nmode = \"all-at-once\"\naction = {{ name = \"u\", command = [\"true\"] }}\n[provider]\nkind = \"openstack\"\n{provider}"
        );
        let config = Config::parse(&text, std::path::Path::new("lab/t.toml"))?;
        Settings::parse(&config, config.provider.settings.clone())
    }

    #[test]
    fn a_server_with_defaults_and_paths_beside_the_lab_file() {
        let s = parse("cloud = \"rax\"\n[provider.server]\nname = \"host\"\nflavor = \"f\"\nimage = \"i\"\nkey = \"keys/id\"\n").unwrap();
        assert_eq!(s.server.user, "root");
        assert_eq!(s.attempts, 3);
        assert_eq!(s.reach, Reach::Ssh);
        assert!(s.server.key.unwrap().ends_with("lab/keys/id"));
    }

    #[test]
    fn vms_on_the_server_are_libvirt_settings_checked_at_their_own_keys() {
        let server = "[provider.server]\nname = \"host\"\nflavor = \"f\"\nimage = \"i\"\n";
        let vms = "[provider.libvirt]\nimage = { dir = \"img\" }\n[[provider.libvirt.vms]]\nname = \"g1\"\n";
        let s = parse(&format!("{server}{vms}")).unwrap();
        assert_eq!(s.vms.unwrap().vms[0].name, "g1");
        let err = parse(&format!("{server}{vms}memory_mib = 1\n"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`provider.libvirt.vms[0]`") && err.contains("128 MiB"),
            "{err}"
        );
        let err = parse(&format!("reach = \"none\"\n{server}{vms}"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("need `reach = \"ssh\"`"), "{err}");
    }

    #[test]
    fn bad_settings_name_their_key_and_line() {
        let err = parse(
            "[provider.server]\nname = \"host\"\nflavor = \"f\"\nimage = \"i\"\nip_version = 5\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("lab/t.toml:14: `provider.server.ip_version`"),
            "{err}"
        );
        let err = parse("[provider.server]\nname = \"host\"\nflavor = \"f\"\nimage = \"i\"\nmetadata = { rollci_run = \"x\" }\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("rollci's own"), "{err}");
        let err = parse(
            "password = \"x\"\n[provider.server]\nname = \"h\"\nflavor = \"f\"\nimage = \"i\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("unknown field `password`"), "{err}");
    }
}
