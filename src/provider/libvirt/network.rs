//! The lab's libvirt networks (`[[provider.networks]]`): rendered from the shipped template
//! (`templates/libvirt/network.xml.hbs`) or the lab's own, named `rollci-<run>-<name>`,
//! journaled before `virsh net-define`, removed after the VMs and before the disks.

use std::net::Ipv4Addr;

use serde::Serialize;

use super::virsh::Virsh;
use crate::provider::interface::Destroyed;

/// The shipped network template.
pub const TEMPLATE: &str = include_str!("../../../templates/libvirt/network.xml.hbs");
/// The journal kind of a network.
pub const NETWORK: &str = "network";

/// Everything a network template gets.
#[derive(Debug, Clone, Serialize)]
pub struct NetSpec {
    pub name: String,
    pub lab: String,
    pub run: String,
    pub role: String,
    /// The bridge's address on the machine, if any (else isolated).
    pub address: Option<Ipv4Addr>,
    pub prefix: u8,
    pub mtu: Option<u32>,
}

impl NetSpec {
    pub fn render(&self, template: &str) -> anyhow::Result<String> {
        crate::templates::render("libvirt network", template, &serde_json::to_value(self)?)
    }
}

/// `rollci-<run>-<name>`.
pub fn name(run: &str, role: &str) -> String {
    format!("rollci-{run}-{role}")
}

/// The lab's own network template.
pub fn read_template(path: &std::path::Path) -> anyhow::Result<String> {
    use anyhow::Context;
    std::fs::read_to_string(path)
        .with_context(|| format!("failed to read the network template `{}`", path.display()))
}

/// Stops and undefines a network; "no network with matching name" is success.
pub fn remove(virsh: &Virsh, name: &str) -> anyhow::Result<Destroyed> {
    let stopped = virsh.call(&["net-destroy", name])?;
    if !stopped.ok && stopped.no_such_object() {
        return Ok(Destroyed::AlreadyGone);
    }
    let undefined = virsh.call(&["net-undefine", name])?;
    match undefined.ok || undefined.no_such_object() {
        true => Ok(Destroyed::Now),
        false => Err(undefined.error(&format!("net-undefine {name}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(address: Option<Ipv4Addr>) -> NetSpec {
        NetSpec {
            name: "rollci-20261202T1-7-mgmt".into(),
            lab: "vm".into(),
            run: "20261202T1-7".into(),
            role: "mgmt".into(),
            address,
            prefix: 22,
            mtu: Some(9000),
        }
    }

    #[test]
    fn an_isolated_network_has_no_address_and_both_pass_virt_xml_validate() {
        let dir = tempfile::tempdir().unwrap();
        for (i, address) in [None, Some(Ipv4Addr::new(172, 29, 236, 1))]
            .into_iter()
            .enumerate()
        {
            let xml = spec(address).render(TEMPLATE).unwrap();
            assert_eq!(xml.contains("<ip "), address.is_some(), "{xml}");
            assert!(!xml.contains("<forward"), "never a route out: {xml}");
            let path = dir.path().join(format!("net{i}.xml"));
            std::fs::write(&path, &xml).unwrap();
            let out = std::process::Command::new("virt-xml-validate")
                .arg(&path)
                .arg("network")
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}{}\n{xml}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
