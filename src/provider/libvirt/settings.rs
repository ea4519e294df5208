//! The `libvirt` provider's `[provider]` settings: the connection, the guest image, the VMs
//! and the host they run on.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::config::Config;
use crate::config::validate::check_name;
use crate::provider::static_hosts::{self, HostEntry};

/// The `kind` that selects this provider.
pub const KIND: &str = "libvirt";

/// `[provider]` with `kind = "libvirt"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// libvirt connection URI (`virsh -c`).
    #[serde(default = "default_uri")]
    pub uri: String,
    /// Where the guest image comes from.
    pub image: ImageSource,
    /// `auto` (KVM when the CPU offers it, TCG otherwise), `kvm` or `qemu` (TCG).
    #[serde(default)]
    pub virt_type: VirtType,
    #[serde(default = "default_memory")]
    pub memory_mib: u32,
    #[serde(default = "default_vcpus")]
    pub vcpus: u32,
    /// The loopback address every forwarded guest port listens on.
    #[serde(default = "default_address")]
    pub address: Ipv4Addr,
    /// The DAC label QEMU runs with (`+0:+0`: root, which can read overlays in any
    /// workspace); empty: libvirt's own qemu user, which needs a workspace it can traverse.
    #[serde(default = "default_label")]
    pub qemu_label: String,
    /// A domain template of the lab's own (handlebars), instead of the shipped one.
    pub domain_template: Option<PathBuf>,
    /// How long `provision` waits for every guest to answer over ssh.
    #[serde(default = "default_wait", with = "humantime_serde")]
    pub wait: Duration,
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    #[serde(default = "default_persist", with = "humantime_serde")]
    pub control_persist: Duration,
    /// This machine, when the VMs run on it, as a host of the lab (e.g. the load
    /// balancer's).
    pub host: Option<ParentEntry>,
    /// A parent host the VMs run on instead, reached over ssh (like a `static` host):
    /// virsh goes through `qemu+ssh://`, disks and the image cache live in `remote_dir`.
    pub parent: Option<HostEntry>,
    /// rollci's folder on the parent: `images/` (the guest image, copied once) and
    /// `runs/<run>/` (disks, console logs).
    #[serde(default = "default_remote_dir")]
    pub remote_dir: PathBuf,
    /// Send rollci's own probes through a SOCKS5 tunnel to the parent (`ssh -N -D`).
    #[serde(default)]
    pub tunnel: bool,
    /// Also wait for `cloud-init status --wait` on the parent.
    #[serde(default)]
    pub cloud_init: bool,
    /// The guests, in `[[provider.vms]]` tables.
    pub vms: Vec<VmEntry>,
    /// libvirt networks between the guests, in `[[provider.networks]]` tables.
    #[serde(default)]
    pub networks: Vec<NetEntry>,
    /// A network template of the lab's own (handlebars), instead of the shipped one.
    pub network_template: Option<PathBuf>,
    /// Tools the lab's playbooks need besides ansible-playbook (checked by `doctor`).
    #[serde(default)]
    pub tools: Vec<String>,
}

/// `image = { dir = "…" }` (a folder holding `vmlinux`, `initrd`, `base.qcow2`, `cmdline`)
/// or `image = { command = [argv] }` (prints such a folder: it builds or finds it cached).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageSource {
    pub dir: Option<PathBuf>,
    pub command: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum VirtType {
    #[default]
    Auto,
    Kvm,
    Qemu,
}

/// `[provider.host]`: this machine (the VMs' parent), reached with a local connection.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParentEntry {
    pub name: String,
    #[serde(default)]
    pub groups: Vec<String>,
}

/// One `[[provider.vms]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmEntry {
    pub name: String,
    #[serde(default)]
    pub groups: Vec<String>,
    /// The guest's service port, forwarded to a free port on `address`: the host's
    /// `{name}` in probes and its `rollci_port`.
    pub port: Option<u16>,
    /// `[[provider.networks]]` this guest has a card on (besides its own user-mode one).
    #[serde(default)]
    pub networks: Vec<String>,
    /// This guest's memory and vCPUs, when not the provider's.
    pub memory_mib: Option<u32>,
    pub vcpus: Option<u32>,
}

/// One `[[provider.networks]]` entry: `rollci-<run>-<name>` in libvirt.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetEntry {
    pub name: String,
    /// The bridge's own address on the VMs' machine, `a.b.c.d/prefix`; none: isolated (no
    /// address on the machine). Never give this to a network on a CI agent of your own.
    pub address: Option<String>,
    pub mtu: Option<u32>,
}

impl NetEntry {
    /// The address and prefix length (checked when the settings were parsed).
    pub fn cidr(&self) -> Option<(Ipv4Addr, u8)> {
        let (address, prefix) = self.address.as_deref()?.split_once('/')?;
        let prefix: u8 = prefix.parse().ok().filter(|p| (1..=30).contains(p))?;
        Some((address.parse().ok()?, prefix))
    }
}

impl Settings {
    /// Parses and checks the settings, with errors naming the lab file's line and key.
    pub fn parse(config: &Config, table: toml::Table) -> anyhow::Result<Settings> {
        Settings::parse_at(config, "provider", table)
    }

    /// The same, for a table at `prefix` (a provider that composes this one).
    pub fn parse_at(config: &Config, prefix: &str, table: toml::Table) -> anyhow::Result<Settings> {
        let mut settings: Settings = config.section(prefix, table)?;
        settings.check().map_err(|(key, m)| {
            let key = key.replacen("provider", prefix, 1);
            config.problem(&key, m)
        })?;
        if let Some(parent) = settings.parent.as_mut() {
            parent.key = parent.key.take().map(|k| config.base_dir().join(k));
        }
        // Absolute: the image command also runs in the lab's folder.
        let base = std::path::absolute(config.base_dir())?;
        settings.image.dir = settings.image.dir.take().map(|d| base.join(d));
        settings.domain_template = settings.domain_template.take().map(|t| base.join(t));
        settings.network_template = settings.network_template.take().map(|t| base.join(t));
        if let Some(argv) = settings.image.command.as_mut() {
            // A relative program path is the lab file's, like playbooks.
            if argv[0].contains('/') && !argv[0].starts_with('/') {
                argv[0] = base.join(&argv[0]).to_string_lossy().into_owned();
            }
        }
        Ok(settings)
    }

    fn check(&self) -> Result<(), (String, String)> {
        match (&self.image.dir, &self.image.command) {
            (Some(_), None) => {}
            (None, Some(argv)) if !argv.is_empty() => {}
            _ => {
                return Err((
                    "provider.image".into(),
                    "give exactly one of `dir` (a folder) or `command` (a non-empty argv)".into(),
                ));
            }
        }
        if self.address.octets()[0] != 127 {
            return Err((
                "provider.address".into(),
                "guest ports are forwarded to loopback: 127.x.y.z".into(),
            ));
        }
        if self.memory_mib < 128 || self.vcpus == 0 {
            return Err((
                "provider.memory_mib".into(),
                "a guest needs at least 128 MiB and one vCPU".into(),
            ));
        }
        if self.vms.is_empty() {
            return Err((
                "provider.vms".into(),
                "a libvirt lab has at least one VM".into(),
            ));
        }
        let mut names: Vec<&str> = self.host.iter().map(|h| h.name.as_str()).collect();
        for (i, vm) in self.vms.iter().enumerate() {
            let key = format!("provider.vms[{i}]");
            check_name(&vm.name).map_err(|m| (key.clone(), m))?;
            if names.contains(&vm.name.as_str()) {
                return Err((key, format!("host `{}` is named twice", vm.name)));
            }
            names.push(&vm.name);
            for group in &vm.groups {
                check_name(group).map_err(|m| (key.clone(), m))?;
            }
        }
        if let Some(host) = &self.host {
            check_name(&host.name).map_err(|m| ("provider.host".to_string(), m))?;
        }
        self.check_parent()?;
        self.check_networks()?;
        let label_ok = self
            .qemu_label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+:-_".contains(c));
        if !label_ok {
            return Err((
                "provider.qemu_label".into(),
                "a DAC label is `user:group` (`+0:+0` for root)".into(),
            ));
        }
        Ok(())
    }
}

impl Settings {
    /// Networks have names of their own and an address that parses; a VM's networks exist.
    fn check_networks(&self) -> Result<(), (String, String)> {
        for (i, net) in self.networks.iter().enumerate() {
            let key = format!("provider.networks[{i}]");
            check_name(&net.name).map_err(|m| (key.clone(), m))?;
            if self.networks[..i].iter().any(|n| n.name == net.name) {
                return Err((key, format!("network `{}` is listed twice", net.name)));
            }
            if net.address.is_some() && net.cidr().is_none() {
                return Err((key, "`address` is `a.b.c.d/prefix` (prefix 1 to 30)".into()));
            }
        }
        for (i, vm) in self.vms.iter().enumerate() {
            if let Some(unknown) = vm
                .networks
                .iter()
                .find(|n| !self.networks.iter().any(|x| &x.name == *n))
            {
                return Err((
                    format!("provider.vms[{i}]"),
                    format!("no `[[provider.networks]]` named `{unknown}`"),
                ));
            }
            if vm.networks.len() > 8 {
                return Err((
                    format!("provider.vms[{i}]"),
                    "at most 8 networks per guest".into(),
                ));
            }
            if vm.memory_mib.is_some_and(|m| m < 128) || vm.vcpus == Some(0) {
                return Err((
                    format!("provider.vms[{i}]"),
                    "a guest needs at least 128 MiB and one vCPU".into(),
                ));
            }
        }
        Ok(())
    }

    /// A parent is a host like a `static` one, alone (no jump: nothing to jump through),
    /// and then the lab's only non-VM host.
    fn check_parent(&self) -> Result<(), (String, String)> {
        let Some(parent) = &self.parent else {
            return match self.tunnel {
                true => Err((
                    "provider.tunnel".into(),
                    "a tunnel goes through a `parent`".into(),
                )),
                false => Ok(()),
            };
        };
        let key = || "provider.parent".to_string();
        if self.host.is_some() {
            return Err((
                key(),
                "give `host` (this machine) or `parent`, not both".into(),
            ));
        }
        if parent.jump.is_some() {
            return Err((key(), "a parent has no `jump`".into()));
        }
        if self.vms.iter().any(|vm| vm.name == parent.name) {
            return Err((key(), format!("host `{}` is named twice", parent.name)));
        }
        let remote = self.remote_dir.to_string_lossy();
        if !remote.starts_with('/') || remote.contains("..") {
            return Err((
                "provider.remote_dir".into(),
                "an absolute path without `..`".into(),
            ));
        }
        let as_static = static_hosts::Settings {
            hosts: vec![parent.clone()],
            wait: self.wait,
            connect_timeout: self.connect_timeout,
            control_persist: self.control_persist,
            cloud_init: false,
            tunnel: None,
            tools: Vec::new(),
        };
        as_static.check().map_err(|(_, m)| (key(), m))
    }
}

fn default_remote_dir() -> PathBuf {
    PathBuf::from("/var/lib/rollci")
}

fn default_uri() -> String {
    "qemu:///system".into()
}

fn default_memory() -> u32 {
    512
}

fn default_vcpus() -> u32 {
    1
}

fn default_address() -> Ipv4Addr {
    Ipv4Addr::LOCALHOST
}

fn default_label() -> String {
    "+0:+0".into()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(provider: &str) -> anyhow::Result<Settings> {
        let text = format!(
            "[lab]\nname = \"vm\"\nfrom_release = \"A\"\nto_release = \"B\"\n[upgrade]\nmode = \"all-at-once\"\naction = {{ name = \"u\", command = [\"true\"] }}\n[provider]\nkind = \"libvirt\"\n{provider}\n"
        );
        let config = Config::parse(&text, std::path::Path::new("lab/rollci.toml"))?;
        Settings::parse(&config, config.provider.settings.clone())
    }

    #[test]
    fn a_parent_is_a_checked_ssh_host_and_excludes_a_local_host() {
        let vms = "image = { dir = \"img\" }\n[[provider.vms]]\nname = \"g1\"\n";
        let parent =
            "parent = { name = \"hv\", address = \"203.0.113.4\", user = \"root\", key = \"k\" }\n";
        let s = parse(&format!("{parent}{vms}")).unwrap();
        assert!(
            s.parent
                .as_ref()
                .unwrap()
                .key
                .as_ref()
                .unwrap()
                .ends_with("lab/k")
        );
        assert_eq!(s.remote_dir, std::path::Path::new("/var/lib/rollci"));
        let both = format!("host = {{ name = \"lb\" }}\n{parent}{vms}");
        assert!(
            parse(&both)
                .unwrap_err()
                .to_string()
                .contains("`host` (this machine) or `parent`")
        );
        let bad = parent.replace("203.0.113.4", "x y");
        let err = parse(&format!("{bad}{vms}")).unwrap_err().to_string();
        assert!(
            err.contains("`provider.parent`") && err.contains("not a host name"),
            "{err}"
        );
        let err = parse(&format!("tunnel = true\n{vms}"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("a tunnel goes through a `parent`"), "{err}");
        let err = parse(&format!("remote_dir = \"rel\"\n{parent}{vms}"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`provider.remote_dir`"), "{err}");
    }

    #[test]
    fn a_lab_of_two_vms_behind_this_host_parses_with_defaults() {
        let s = parse(
            "image = { command = [\"../build-image\"] }\nhost = { name = \"lb\", groups = [\"lb\"] }\n\
             [[provider.vms]]\nname = \"node1\"\ngroups = [\"nodes\"]\nport = 8080\n\
             [[provider.vms]]\nname = \"node2\"\n",
        )
        .unwrap();
        assert_eq!(s.uri, "qemu:///system");
        assert_eq!(s.virt_type, VirtType::Auto);
        assert_eq!(s.vms.len(), 2);
        assert_eq!(s.vms[0].port, Some(8080));
        assert_eq!(s.qemu_label, "+0:+0");
        let program = &s.image.command.as_ref().unwrap()[0];
        let expected = std::path::absolute("lab/../build-image").unwrap();
        assert_eq!(std::path::Path::new(program), expected);
    }

    #[test]
    fn mistakes_name_the_line_and_the_key() {
        for (provider, key, says) in [
            (
                "image = {}\n[[provider.vms]]\nname = \"a\"\n",
                "provider.image",
                "exactly one",
            ),
            (
                "image = { dir = \"i\" }\naddress = \"10.0.0.1\"\n[[provider.vms]]\nname = \"a\"\n",
                "provider.address",
                "loopback",
            ),
            (
                "image = { dir = \"i\" }\nvms = []\n",
                "provider.vms",
                "at least one",
            ),
            (
                "image = { dir = \"i\" }\nhost = { name = \"a\" }\n[[provider.vms]]\nname = \"a\"\n",
                "provider.vms[0]",
                "named twice",
            ),
            (
                "image = { dir = \"i\" }\nqemu_label = \"a b\"\n[[provider.vms]]\nname = \"a\"\n",
                "provider.qemu_label",
                "DAC label",
            ),
        ] {
            let e = format!("{:#}", parse(provider).unwrap_err());
            assert!(e.contains(key) && e.contains(says), "{provider}: {e}");
            assert!(e.contains("rollci.toml:"), "{e}");
        }
    }
}
