//! One guest's libvirt domain: what it is made of, rendered from the shipped handlebars
//! template (`templates/libvirt/domain.xml.hbs`) or the lab's own.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use serde::Serialize;

/// The shipped domain template.
pub const TEMPLATE: &str = include_str!("../../../templates/libvirt/domain.xml.hbs");

/// A guest port forwarded to `address:host_port` on the agent.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Forward {
    pub host_port: u16,
    pub guest_port: u16,
}

/// Everything a domain template gets.
#[derive(Debug, Clone, Serialize)]
pub struct Spec {
    pub name: String,
    pub lab: String,
    pub run: String,
    pub role: String,
    pub namespace: &'static str,
    pub virt_type: &'static str,
    pub cpu_mode: &'static str,
    pub memory_mib: u32,
    pub vcpus: u32,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub cmdline: String,
    pub disk: PathBuf,
    pub console_log: PathBuf,
    pub qemu_label: String,
    /// QEMU's `-netdev` value: user-mode networking, restricted, with the forwards.
    pub netdev: String,
    /// Cards on libvirt networks of the lab, besides QEMU's own.
    pub networks: Vec<Card>,
}

/// A card on a libvirt network, on a PCI slot after QEMU's own card (0x10): that one stays
/// the guest's first interface, the one its init gives the user-mode address.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Card {
    pub network: String,
    pub slot: String,
}

/// The cards for these networks (at most 8, checked with the settings).
pub fn cards(networks: impl IntoIterator<Item = String>) -> Vec<Card> {
    let cards = networks.into_iter().enumerate().map(|(i, network)| Card {
        network,
        slot: format!("0x{:02x}", 0x11 + i),
    });
    cards.collect()
}

/// How a guest runs: under KVM or QEMU's TCG emulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    /// KVM works where the CPU offers hardware virtualization and `/dev/kvm` opens; a
    /// paravirtual `/dev/kvm` without vmx/svm hangs stock guest kernels.
    pub fn detect() -> (Accel, String) {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let flags = cpuinfo
            .lines()
            .find(|l| l.starts_with("flags"))
            .unwrap_or("");
        let hardware = flags.split_whitespace().any(|f| f == "vmx" || f == "svm");
        let opens = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm")
            .is_ok();
        match (hardware, opens) {
            (true, true) => (Accel::Kvm, "/dev/kvm opens and the CPU has vmx/svm".into()),
            (false, _) => (
                Accel::Tcg,
                "the CPU shows no vmx/svm (no KVM, or a paravirtual one that hangs guests): TCG"
                    .into(),
            ),
            (true, false) => (Accel::Tcg, "/dev/kvm cannot be opened: TCG".into()),
        }
    }

    pub fn virt_type(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "qemu",
        }
    }

    /// TCG cannot pass the host CPU through (QEMU aborts setting MSRs): `maximum` is every
    /// feature TCG emulates.
    pub fn cpu_mode(self) -> &'static str {
        match self {
            Accel::Kvm => "host-passthrough",
            Accel::Tcg => "maximum",
        }
    }
}

/// The `-netdev` value: no route out of the guest (`restrict=on`), ssh and the service
/// reachable on the agent's loopback.
pub fn netdev(address: Ipv4Addr, forwards: &[Forward]) -> String {
    let mut value = String::from("user,id=n0,restrict=on");
    for f in forwards {
        value.push_str(&format!(
            ",hostfwd=tcp:{address}:{}-:{}",
            f.host_port, f.guest_port
        ));
    }
    value
}

/// The kernel command line: the image's, plus the guest's name and the lab's public key
/// (the image's init reads both: one image serves every lab).
pub fn cmdline(image: &str, role: &str, public_key: &str) -> String {
    use base64::Engine;
    // Base64: the kernel command line cannot carry the spaces of a key line.
    let key = base64::engine::general_purpose::STANDARD.encode(public_key.trim());
    format!("{} rollci.hostname={role} rollci.key={key}", image.trim())
}

impl Spec {
    /// The domain XML, from `template` (the shipped one or the lab's).
    pub fn render(&self, template: &str) -> anyhow::Result<String> {
        let data = serde_json::to_value(self)?;
        crate::templates::render("libvirt domain", template, &data)
    }
}

#[cfg(test)]
pub fn sample(dir: &std::path::Path) -> Spec {
    Spec {
        name: "rollci-20261202T1-7-node1".into(),
        lab: "vm".into(),
        run: "20261202T1-7".into(),
        role: "node1".into(),
        namespace: super::virsh::NAMESPACE,
        virt_type: Accel::Tcg.virt_type(),
        cpu_mode: Accel::Tcg.cpu_mode(),
        memory_mib: 512,
        vcpus: 1,
        kernel: dir.join("vmlinux"),
        initrd: dir.join("initrd"),
        cmdline: cmdline("root=/dev/vda rw", "node1", "ssh-ed25519 AAAA rollci"),
        disk: dir.join("node1.qcow2"),
        console_log: dir.join("node1.console.log"),
        qemu_label: "+0:+0".into(),
        netdev: netdev(
            Ipv4Addr::LOCALHOST,
            &[Forward {
                host_port: 40022,
                guest_port: 22,
            }],
        ),
        networks: cards(["rollci-20261202T1-7-mgmt".to_string()]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn the_key_travels_as_base64_after_the_images_own_cmdline() {
        assert_eq!(
            cmdline("root=/dev/vda rw\n", "node1", "ssh-ed25519 A\n"),
            "root=/dev/vda rw rollci.hostname=node1 rollci.key=c3NoLWVkMjU1MTkgQQ=="
        );
    }

    #[test]
    fn the_netdev_forwards_only_to_loopback_and_restricts_the_guest() {
        let forwards = [
            Forward {
                host_port: 40022,
                guest_port: 22,
            },
            Forward {
                host_port: 40080,
                guest_port: 8080,
            },
        ];
        assert_eq!(
            netdev(Ipv4Addr::new(127, 0, 0, 9), &forwards),
            "user,id=n0,restrict=on,hostfwd=tcp:127.0.0.9:40022-:22,hostfwd=tcp:127.0.0.9:40080-:8080"
        );
    }

    /// The shipped template renders XML that libvirt's own schema accepts.
    #[test]
    fn the_shipped_template_passes_virt_xml_validate() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = sample(dir.path());
        spec.lab = "a<b>&'\"".into();
        let xml = spec.render(TEMPLATE).unwrap();
        assert!(xml.contains("lab='a&lt;b&gt;&amp;&apos;&quot;'"), "{xml}");
        let path = dir.path().join("domain.xml");
        std::fs::write(&path, &xml).unwrap();
        let out = Command::new("virt-xml-validate")
            .arg(&path)
            .arg("domain")
            .output()
            .expect("virt-xml-validate (apt-get install -y libvirt-clients; `make test-deps`)");
        assert!(
            out.status.success(),
            "{}{}\n{xml}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// libvirt's test driver defines, starts and removes the rendered domain, and keeps the
    /// metadata rollci finds leftovers by (its state lives for one connection: one call).
    #[test]
    fn libvirts_test_driver_runs_the_domains_lifecycle_and_returns_the_tag() {
        let dir = tempfile::tempdir().unwrap();
        let spec = sample(dir.path());
        let path = dir.path().join("domain.xml");
        std::fs::write(&path, spec.render(TEMPLATE).unwrap()).unwrap();
        let net = super::super::network::NetSpec {
            name: spec.networks[0].network.clone(),
            lab: "vm".into(),
            run: "20261202T1-7".into(),
            role: "mgmt".into(),
            address: None,
            prefix: 0,
            mtu: None,
        };
        let net_path = dir.path().join("net.xml");
        let net_xml = net.render(super::super::network::TEMPLATE).unwrap();
        std::fs::write(&net_path, net_xml).unwrap();
        let script = format!(
            "net-define {np}; net-start {nn}; define {p}; start {n}; domiflist {n}; metadata {n} {ns}; destroy {n}; undefine {n}; net-destroy {nn}; net-undefine {nn}; list --all --name",
            np = net_path.display(),
            nn = net.name,
            p = path.display(),
            n = spec.name,
            ns = super::super::virsh::NAMESPACE
        );
        let out = Command::new("virsh")
            .args(["-c", "test:///default", &script])
            .output()
            .expect("virsh (apt-get install -y libvirt-clients)");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains("lab=\"vm\" run=\"20261202T1-7\""),
            "{stdout}"
        );
        assert!(
            stdout.contains("rollci-20261202T1-7-mgmt"),
            "the card is on the network: {stdout}"
        );
        let listed: Vec<&str> = stdout
            .lines()
            .skip_while(|l| !l.contains("undefined"))
            .collect();
        assert!(!listed.iter().any(|l| l.trim() == spec.name), "{stdout}");
    }
}
