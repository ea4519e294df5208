//! The `static` provider's `[provider]` settings: hosts that already exist, reached over
//! ssh, and how long to wait for them.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::config::Config;
use crate::config::validate::check_name;

/// The `kind` that selects this provider.
pub const KIND: &str = "static";

/// `[provider]` with `kind = "static"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The hosts, in `[[provider.hosts]]` tables.
    pub hosts: Vec<HostEntry>,
    /// How long `provision` waits for every host to answer over ssh (with backoff).
    #[serde(default = "default_wait", with = "humantime_serde")]
    pub wait: Duration,
    /// ssh's `ConnectTimeout` of every connection.
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// How long an idle ssh master stays (`ControlPersist`); cleanup stops them anyway.
    #[serde(default = "default_persist", with = "humantime_serde")]
    pub control_persist: Duration,
    /// Also wait until `cloud-init status --wait` returns on every host.
    #[serde(default)]
    pub cloud_init: bool,
    /// A listed host that can route to the lab: rollci's probes and persistent-resource
    /// requests go through a SOCKS5 tunnel to it (`ssh -N -D`).
    pub tunnel: Option<String>,
    /// Tools the lab's playbooks need besides ansible-playbook (checked by `doctor`).
    #[serde(default)]
    pub tools: Vec<String>,
}

/// One `[[provider.hosts]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostEntry {
    pub name: String,
    pub address: String,
    #[serde(default = "default_port")]
    pub port: u16,
    pub user: String,
    /// Private key file (relative to the lab file); without it, ssh's own defaults.
    pub key: Option<PathBuf>,
    /// Ansible groups.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Another host of the list through which this one is reached (`ProxyJump`).
    pub jump: Option<String>,
}

impl Settings {
    /// Parses and checks the settings, with errors naming the lab file's line and key.
    pub fn parse(config: &Config, table: toml::Table) -> anyhow::Result<Settings> {
        let mut settings: Settings = config.section("provider", table)?;
        settings
            .check()
            .map_err(|(key, m)| config.problem(&key, m))?;
        for host in &mut settings.hosts {
            host.key = host.key.take().map(|k| config.base_dir().join(k));
        }
        Ok(settings)
    }

    /// Every host's values (they are written into an ssh_config) and the jumps.
    pub fn check(&self) -> Result<(), (String, String)> {
        if self.hosts.is_empty() {
            return Err((
                "provider.hosts".into(),
                "a static lab lists at least one host".into(),
            ));
        }
        for (i, host) in self.hosts.iter().enumerate() {
            let key = format!("provider.hosts[{i}]");
            check_name(&host.name).map_err(|m| (key.clone(), m))?;
            if self.hosts[..i].iter().any(|h| h.name == host.name) {
                return Err((key, format!("host `{}` is listed twice", host.name)));
            }
            // These values are written into an ssh_config: nothing there may end a line or
            // open a quote.
            let plain = |v: &str, extra: &str| {
                !v.is_empty()
                    && v.chars()
                        .all(|c| c.is_ascii_alphanumeric() || extra.contains(c))
            };
            if !plain(&host.address, ".-_:%[]") {
                return Err((
                    key,
                    format!("`{}` is not a host name or IP address", host.address),
                ));
            }
            if !plain(&host.user, ".-_") {
                return Err((key, format!("`{}` is not a plain user name", host.user)));
            }
            let key_path = host.key.as_deref().map(|k| k.to_string_lossy().to_string());
            if key_path.is_some_and(|k| k.chars().any(|c| c.is_control() || c == '"')) {
                return Err((
                    key,
                    "the `key` path holds a quote or a control character".into(),
                ));
            }
            for group in &host.groups {
                check_name(group).map_err(|m| (key.clone(), m))?;
            }
            self.check_jump(i).map_err(|m| (key, m))?;
        }
        if let Some(t) = &self.tunnel
            && !self.hosts.iter().any(|h| &h.name == t)
        {
            return Err((
                "provider.tunnel".into(),
                format!("`tunnel = \"{t}\"` names no host of the list"),
            ));
        }
        Ok(())
    }

    /// A jump host must be another listed host, and the jumps must end somewhere.
    fn check_jump(&self, index: usize) -> Result<(), String> {
        let mut seen = vec![self.hosts[index].name.as_str()];
        let mut next = self.hosts[index].jump.as_deref();
        while let Some(name) = next {
            let Some(host) = self.hosts.iter().find(|h| h.name == name) else {
                return Err(format!("`jump = \"{name}\"` names no host of the list"));
            };
            if seen.contains(&name) {
                return Err(format!("the jumps loop: {} -> {name}", seen.join(" -> ")));
            }
            seen.push(name);
            next = host.jump.as_deref();
        }
        Ok(())
    }
}

fn default_wait() -> Duration {
    Duration::from_secs(300)
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_persist() -> Duration {
    Duration::from_secs(600)
}

fn default_port() -> u16 {
    22
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(hosts: &str) -> anyhow::Result<Settings> {
        let text = format!(
            "[lab]\nname = \"t\"\nfrom_release = \"A\"\nto_release = \"B\"\n[upgrade]\nmode = \"all-at-once\"\naction = {{ name = \"u\", command = [\"true\"] }}\n[provider]\nkind = \"static\"\n{hosts}"
        );
        let config = Config::parse(&text, std::path::Path::new("lab/t.toml"))?;
        Settings::parse(&config, config.provider.settings.clone())
    }

    #[test]
    fn hosts_take_defaults_and_keys_are_relative_to_the_lab_file() {
        let s = parse("[[provider.hosts]]\nname = \"aio1\"\naddress = \"10.1.0.5\"\nuser = \"root\"\nkey = \"keys/id\"\n").unwrap();
        assert_eq!(s.hosts[0].port, 22);
        assert_eq!(
            s.hosts[0].key.as_deref(),
            Some(std::path::Path::new("lab/keys/id"))
        );
        assert_eq!(s.wait, Duration::from_secs(300));
    }

    #[test]
    fn bad_hosts_name_their_table_and_line() {
        let err = parse("").unwrap_err().to_string();
        assert!(
            err.contains("`provider`: missing field `hosts`") || err.contains("provider.hosts"),
            "{err}"
        );
        let two = "[[provider.hosts]]\nname = \"a\"\naddress = \"x\"\nuser = \"u\"\njump = \"b\"\n\n[[provider.hosts]]\nname = \"b\"\naddress = \"y\"\nuser = \"u\"\njump = \"a\"\n";
        let err = parse(two).unwrap_err().to_string();
        assert!(
            err.starts_with("lab/t.toml:10: `provider.hosts[0]`: the jumps loop: a -> b -> a"),
            "{err}"
        );
        let err = parse(&two.replace("jump = \"a\"\n", "jump = \"c\"\n"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`provider.hosts[0]`: `jump = \"c\"` names no host"),
            "{err}"
        );
        let err = parse(
            "[[provider.hosts]]\nname = \"a\"\naddress = \"x\"\nuser = \"u\"\nport = \"ssh\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("`provider.hosts[0].port`") && err.contains("invalid type"),
            "{err}"
        );
    }

    #[test]
    fn a_tunnel_must_go_through_a_listed_host() {
        let host = "[[provider.hosts]]\nname = \"a\"\naddress = \"x\"\nuser = \"u\"\n";
        let err = parse(&format!("tunnel = \"b\"\n{host}"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`provider.tunnel`: `tunnel = \"b\"` names no host"),
            "{err}"
        );
        let s = parse(&format!("tunnel = \"a\"\n{host}")).unwrap();
        assert_eq!(s.tunnel.as_deref(), Some("a"));
    }
}
