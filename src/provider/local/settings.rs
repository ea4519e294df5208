//! The local provider's `[provider]` settings: how many nodes, on which loopback
//! addresses, on which port.

use std::net::Ipv4Addr;

use serde::Deserialize;

use crate::config::Config;

/// The `kind` that selects this provider.
pub const KIND: &str = "local";

/// `[provider]` with `kind = "local"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Number of API nodes (the load balancer is one more host).
    #[serde(default = "default_nodes")]
    pub nodes: u8,
    /// First loopback address: the load balancer gets it, the nodes the following ones.
    #[serde(default = "default_base_address")]
    pub base_address: Ipv4Addr,
    /// Port every host binds on its own address; 0 picks a free one at provision time.
    #[serde(default)]
    pub port: u16,
    /// Tools the lab's playbooks need besides ansible-playbook (checked by `doctor`).
    #[serde(default)]
    pub tools: Vec<String>,
    /// Named ports besides `port`, one per service a host runs (`["keystone", "glance"]`):
    /// each free on every address, chosen at provision.
    #[serde(default)]
    pub ports: Vec<String>,
}

impl Settings {
    /// Parses and checks the settings, with errors naming the lab file's line and key.
    pub fn parse(config: &Config, table: toml::Table) -> anyhow::Result<Settings> {
        let settings: Settings = config.section("provider", table)?;
        settings
            .check()
            .map_err(|(key, m)| config.problem(key, m))?;
        Ok(settings)
    }

    fn check(&self) -> Result<(), (&'static str, String)> {
        let [first, _, _, last] = self.base_address.octets();
        if first != 127 {
            return Err((
                "provider.base_address",
                "a local lab lives on loopback: 127.x.y.z".into(),
            ));
        }
        if self.nodes == 0 {
            return Err(("provider.nodes", "must be at least 1".into()));
        }
        for (i, name) in self.ports.iter().enumerate() {
            crate::config::validate::check_name(name).map_err(|m| ("provider.ports", m))?;
            if self.ports[..i].contains(name) {
                return Err(("provider.ports", format!("`{name}` is named twice")));
            }
        }
        if u16::from(last) + u16::from(self.nodes) > 254 {
            return Err((
                "provider.base_address",
                format!("no room for {} nodes after it", self.nodes),
            ));
        }
        Ok(())
    }

    /// `lb`'s address first, then one per node.
    pub fn addresses(&self) -> Vec<Ipv4Addr> {
        let base = u32::from(self.base_address);
        (0..=u32::from(self.nodes))
            .map(|i| Ipv4Addr::from(base + i))
            .collect()
    }
}

fn default_nodes() -> u8 {
    3
}

fn default_base_address() -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(provider: &str) -> anyhow::Result<Settings> {
        let text = format!(
            "[lab]\nname = \"t\"\nfrom_release = \"A\"\nto_release = \"B\"\n[provider]\nkind = \"local\"\n{provider}\n[upgrade]\nmode = \"all-at-once\"\naction = {{ name = \"u\", command = [\"true\"] }}\n"
        );
        let config = Config::parse(&text, std::path::Path::new("t.toml"))?;
        Settings::parse(&config, config.provider.settings.clone())
    }

    #[test]
    fn defaults_give_three_nodes_after_lb() {
        let s = parse("").unwrap();
        assert_eq!(s.addresses().len(), 4);
        assert_eq!(s.addresses()[1], Ipv4Addr::new(127, 0, 0, 3));
    }

    #[test]
    fn named_ports_are_plain_and_distinct() {
        let s = parse("ports = [\"keystone\", \"glance\"]").unwrap();
        assert_eq!(s.ports, ["keystone", "glance"]);
        let err = parse("ports = [\"a\", \"a\"]").unwrap_err().to_string();
        assert!(
            err.contains("`provider.ports`: `a` is named twice"),
            "{err}"
        );
        let err = parse("ports = [\"a b\"]").unwrap_err().to_string();
        assert!(
            err.contains("`provider.ports`: `a b` is not a valid name"),
            "{err}"
        );
    }

    #[test]
    fn errors_name_the_line_and_the_key() {
        let err = parse("nodes = \"three\"").unwrap_err().to_string();
        assert!(
            err.starts_with("t.toml:7: `provider.nodes`: invalid type"),
            "{err}"
        );
        let err = parse("base_address = \"10.0.0.1\"")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("t.toml:7: `provider.base_address`: a local lab"),
            "{err}"
        );
        let err = parse("colour = 1").unwrap_err().to_string();
        assert!(err.contains("unknown field `colour`"), "{err}");
        assert!(err.starts_with("t.toml:7: `provider"), "{err}");
    }
}
