//! The `libvirt` provider: guests built by the pipeline, on this machine or on a parent host
//! reached over ssh. Each VM is a copy-on-write overlay of the lab's base image and a domain
//! named `rollci-<run>-<role>` tagged with the lab and run in its `<metadata>`; both are
//! journaled before they exist. All guests boot at once and are waited for over ssh in
//! parallel; teardown is VMs, then disks, idempotently.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::json;

use super::domain::{self, Accel, Forward, Spec};
use super::image::Image;
use super::machine::Machine;
use super::network;
use super::settings::{KIND, NetEntry, Settings, VirtType, VmEntry};
use super::virsh::{NAMESPACE, Virsh};
use crate::provider::ssh::{Ssh, Target};
use crate::provider::static_hosts::{self, StaticHosts};
use crate::workspace::journal::{Host, Journal, Layer, Status};

pub(super) const DOMAIN: &str = "domain";
pub(super) const DISK: &str = "disk";
pub(super) const MASTER: &str = "ssh-master";
/// This run's folder on a parent host (disks, console logs).
pub(super) const RUN_DIR: &str = "run-dir";
/// The machine the guests run on: recorded, never destroyed.
pub(super) const PARENT: &str = "libvirt-host";
/// The guests' ssh user (the image's init authorizes the lab's key for root).
const USER: &str = "root";

pub struct Libvirt {
    pub(super) settings: Settings,
    pub(super) workspace: PathBuf,
    pub(super) base_dir: PathBuf,
    pub(super) ssh: Ssh,
    pub(super) machine: Machine,
    /// The URI, once worked out (on a parent that writes the ssh wrapper: once per run).
    uri: std::sync::OnceLock<String>,
}

/// A guest as the journal knows it.
pub(super) struct Guest {
    pub name: String,
    pub domain: String,
    pub ssh_port: u16,
    pub port: u16,
}

impl Libvirt {
    pub fn new(settings: Settings, workspace: &Path, base_dir: &Path) -> Libvirt {
        let workspace = std::path::absolute(workspace).unwrap_or_else(|_| workspace.to_path_buf());
        let ssh = Ssh::new(&workspace);
        let machine = match &settings.parent {
            None => Machine::Local,
            Some(parent) => Machine::Remote {
                ssh: ssh.clone(),
                host: parent.name.clone(),
                dir: settings.remote_dir.clone(),
            },
        };
        Libvirt {
            ssh,
            machine,
            uri: std::sync::OnceLock::new(),
            settings,
            base_dir: base_dir.to_path_buf(),
            workspace,
        }
    }

    /// virsh against the machine (on a parent: `qemu+ssh://` through the run's ssh).
    pub(super) fn virsh(&self) -> anyhow::Result<Virsh> {
        if let Some(uri) = self.uri.get() {
            return Ok(Virsh::new(uri));
        }
        let uri = self.machine.uri(&self.settings.uri)?;
        Ok(Virsh::new(self.uri.get_or_init(|| uri)))
    }

    /// The parent as a `static` host: reached, waited for, tunneled through.
    pub(super) fn parent_hosts(&self) -> Option<StaticHosts> {
        let parent = self.settings.parent.clone()?;
        let settings = static_hosts::Settings {
            hosts: vec![parent.clone()],
            wait: self.settings.wait,
            connect_timeout: self.settings.connect_timeout,
            control_persist: self.settings.control_persist,
            cloud_init: self.settings.cloud_init,
            tunnel: self.settings.tunnel.then_some(parent.name),
            tools: Vec::new(),
        };
        Some(StaticHosts::new(settings, &self.workspace))
    }

    fn key(&self) -> PathBuf {
        self.workspace.join("ssh").join("id_ed25519")
    }

    /// The lab's key pair, made once per workspace (never committed, never in the image).
    fn public_key(&self) -> anyhow::Result<String> {
        let key = self.key();
        let public = key.with_extension("pub");
        if !public.exists() {
            std::fs::create_dir_all(key.parent().unwrap_or(Path::new(".")))?;
            let _ = std::fs::remove_file(&key);
            let status = std::process::Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", "rollci", "-f"])
                .arg(&key)
                .stdin(std::process::Stdio::null())
                .status()
                .context("failed to run `ssh-keygen` (hint: apt-get install -y openssh-client)")?;
            anyhow::ensure!(status.success(), "`ssh-keygen` failed ({status})");
        }
        std::fs::read_to_string(&public)
            .with_context(|| format!("failed to read `{}`", public.display()))
    }

    /// KVM when it can run guests, TCG otherwise; and why. On a parent, `auto` asks its
    /// libvirt whether it offers KVM.
    pub fn accel(&self) -> (Accel, String) {
        match (self.settings.virt_type, &self.machine) {
            (VirtType::Kvm, _) => (Accel::Kvm, "the lab asks for kvm".into()),
            (VirtType::Qemu, _) => (Accel::Tcg, "the lab asks for qemu (TCG)".into()),
            (VirtType::Auto, Machine::Local) => Accel::detect(),
            (VirtType::Auto, Machine::Remote { host, .. }) => {
                // The same test as here: a libvirt that offers kvm is not enough (a
                // paravirtual KVM without vmx/svm hangs stock guests).
                let cpu = ["grep", "-qwE", "vmx|svm", "/proc/cpuinfo"];
                let hardware = self.machine.succeeds(&cpu);
                let opens = self.machine.succeeds(&["test", "-w", "/dev/kvm"]);
                match (hardware, opens) {
                    (true, true) => (Accel::Kvm, format!("`{host}` has vmx/svm and /dev/kvm")),
                    (false, _) => (Accel::Tcg, format!("`{host}`'s CPU shows no vmx/svm: TCG")),
                    (true, false) => (
                        Accel::Tcg,
                        format!("/dev/kvm on `{host}` is not writable: TCG"),
                    ),
                }
            }
        }
    }

    pub(super) fn guests(&self, journal: &Journal) -> Vec<Guest> {
        let domains = journal.state.live().filter(|r| r.kind == DOMAIN);
        domains
            .map(|r| Guest {
                name: r.name.clone(),
                domain: r.data["domain"].as_str().unwrap_or_default().to_string(),
                ssh_port: r.data["ssh_port"].as_u64().unwrap_or_default() as u16,
                port: r.data["port"].as_u64().unwrap_or_default() as u16,
            })
            .collect()
    }

    fn domain_name(&self, journal: &Journal, role: &str) -> String {
        format!("rollci-{}-{role}", journal.state.run_id)
    }

    /// Where disks go: the workspace here, the run's folder on a parent (journaled first).
    fn disk_dir(&self, journal: &mut Journal) -> anyhow::Result<(PathBuf, String)> {
        let parent = self.parent_id(journal)?;
        let local = self.workspace.join("lab").join("disks");
        let dir = self.machine.run_dir(&local, &journal.state.run_id);
        if let Machine::Local = self.machine {
            return Ok((dir, parent));
        }
        if let Some(r) = journal.state.live().find(|r| r.kind == RUN_DIR) {
            return Ok((dir, r.id.clone()));
        }
        let data = json!({ "path": dir });
        let id =
            journal.begin_resource(KIND, RUN_DIR, "run", Layer::LabState, Some(&parent), data)?;
        self.machine.mkdir(&dir)?;
        journal.set_status(&id, Status::Created)?;
        Ok((dir, id))
    }

    /// Journals then creates one guest's overlay disk and domain (kept when already there).
    fn define(
        &self,
        journal: &mut Journal,
        vm: &VmEntry,
        image: &Image,
        key: &str,
    ) -> anyhow::Result<()> {
        let known = journal
            .state
            .live()
            .any(|r| r.kind == DOMAIN && r.name == vm.name);
        if known {
            return Ok(());
        }
        let domain = self.domain_name(journal, &vm.name);
        let (dir, dir_id) = self.disk_dir(journal)?;
        let disk = dir.join(format!("{domain}.qcow2"));
        let data = json!({ "path": disk });
        let disk_id =
            journal.begin_resource(KIND, DISK, &vm.name, Layer::LabState, Some(&dir_id), data)?;
        self.machine.overlay(image, &disk)?;
        journal.set_status(&disk_id, Status::Created)?;

        let address = self.settings.address;
        let ssh_port = self.machine.free_port(address)?;
        let port = match vm.port {
            Some(_) => self.machine.free_port(address)?,
            None => 0,
        };
        let mut forwards = vec![Forward {
            host_port: ssh_port,
            guest_port: 22,
        }];
        forwards.extend(vm.port.map(|guest_port| Forward {
            host_port: port,
            guest_port,
        }));
        let (accel, _) = self.accel();
        let console = self.console_log(journal, &domain);
        self.machine
            .mkdir(console.parent().unwrap_or(Path::new("/")))?;
        let spec = Spec {
            name: domain.clone(),
            lab: journal.state.lab.clone(),
            run: journal.state.run_id.clone(),
            role: vm.name.clone(),
            namespace: NAMESPACE,
            virt_type: accel.virt_type(),
            cpu_mode: accel.cpu_mode(),
            memory_mib: vm.memory_mib.unwrap_or(self.settings.memory_mib),
            vcpus: vm.vcpus.unwrap_or(self.settings.vcpus),
            kernel: image.kernel.clone(),
            initrd: image.initrd.clone(),
            cmdline: domain::cmdline(&image.cmdline, &vm.name, key),
            disk: disk.clone(),
            console_log: console.clone(),
            qemu_label: self.settings.qemu_label.clone(),
            netdev: domain::netdev(address, &forwards),
            networks: domain::cards(
                vm.networks
                    .iter()
                    .map(|n| network::name(&journal.state.run_id, n)),
            ),
        };
        let xml = spec.render(&self.template()?)?;
        let xml_path = self.workspace.join("lab").join(format!("{domain}.xml"));
        crate::workspace::atomic::write(&xml_path, xml.as_bytes())?;
        let virsh = self.virsh()?;
        let data = json!({
            "domain": domain, "uri": virsh.uri, "ssh_port": ssh_port, "port": port,
            "console": console, "xml": xml_path,
        });
        let id = journal.begin_resource(KIND, DOMAIN, &vm.name, Layer::Vm, Some(&disk_id), data)?;
        virsh.define(&xml_path)?;
        journal.set_status(&id, Status::Created)
    }

    /// The guest's console log where QEMU writes it (on the parent, in the run's folder).
    pub(super) fn console_log(&self, journal: &Journal, domain: &str) -> PathBuf {
        let local = self.local_console(journal, domain);
        match &self.machine {
            Machine::Local => local,
            Machine::Remote { .. } => {
                let dir = self.machine.run_dir(&local, &journal.state.run_id);
                dir.join(format!("{domain}.console.log"))
            }
        }
    }

    /// Where the step's logs keep a guest's console.
    pub(super) fn local_console(&self, journal: &Journal, domain: &str) -> PathBuf {
        let dir = self.workspace.join("logs").join(&journal.state.run_id);
        dir.join("console").join(format!("{domain}.log"))
    }

    fn template(&self) -> anyhow::Result<String> {
        match &self.settings.domain_template {
            None => Ok(domain::TEMPLATE.to_string()),
            Some(path) => std::fs::read_to_string(path).with_context(|| {
                format!("failed to read the domain template `{}`", path.display())
            }),
        }
    }

    pub(super) fn parent_id(&self, journal: &mut Journal) -> anyhow::Result<String> {
        if let Some(r) = journal.state.live().find(|r| r.kind == PARENT) {
            return Ok(r.id.clone());
        }
        let data = json!({ "uri": self.settings.uri });
        let id = journal.begin_resource(KIND, PARENT, "host", Layer::Host, None, data)?;
        journal.set_status(&id, Status::Created)?;
        Ok(id)
    }

    /// The lab's hosts: this machine or the parent (when the lab names one) and every guest.
    pub(super) fn hosts(&self, guests: &[Guest], parent_port: u16) -> Vec<Host> {
        let address = self.settings.address.to_string();
        let mut hosts: Vec<Host> = self
            .settings
            .host
            .iter()
            .map(|h| Host {
                name: h.name.clone(),
                address: address.clone(),
                port: parent_port,
                groups: h.groups.clone(),
                connection: "local".into(),
                user: None,
                ports: Default::default(),
            })
            .collect();
        hosts.extend(self.settings.parent.iter().map(|p| Host {
            name: p.name.clone(),
            address: p.address.clone(),
            port: p.port,
            groups: p.groups.clone(),
            connection: "ssh".into(),
            user: Some(p.user.clone()),
            ports: Default::default(),
        }));
        for vm in &self.settings.vms {
            let Some(g) = guests.iter().find(|g| g.name == vm.name) else {
                continue;
            };
            hosts.push(Host {
                name: vm.name.clone(),
                address: address.clone(),
                port: g.port,
                groups: vm.groups.clone(),
                connection: "ssh".into(),
                user: Some(USER.into()),
                ports: Default::default(),
            });
        }
        hosts
    }

    /// The ssh_config's hosts: the parent first, then the guests (through it).
    pub(super) fn targets(&self, guests: &[Guest]) -> Vec<Target> {
        let parent = self.settings.parent.iter().map(|p| Target {
            name: p.name.clone(),
            address: p.address.clone(),
            port: p.port,
            user: p.user.clone(),
            key: p
                .key
                .as_ref()
                .map(|k| std::path::absolute(k).unwrap_or(k.clone())),
            jump: None,
        });
        let jump = self.settings.parent.as_ref().map(|p| p.name.clone());
        let guests = guests.iter().map(|g| Target {
            name: g.name.clone(),
            address: self.settings.address.to_string(),
            port: g.ssh_port,
            user: USER.into(),
            key: Some(self.key()),
            jump: jump.clone(),
        });
        parent.chain(guests).collect()
    }

    /// Defines every VM, writes the ssh_config and boots them (see `Provider::build`).
    pub(super) fn build_lab(&self, journal: &mut Journal) -> anyhow::Result<()> {
        let image = Image::resolve(&self.settings.image, &self.base_dir)?;
        let image = self.machine.place(image)?;
        let key = self.public_key()?;
        let parent = self.parent_id(journal)?;
        self.define_networks(journal, &parent)?;
        for vm in &self.settings.vms {
            self.define(journal, vm, &image, &key)?;
        }
        let guests = self.guests(journal);
        let local = journal.state.hosts.iter().find(|h| h.connection == "local");
        let parent_port = match (&self.settings.host, local) {
            (None, _) => 0,
            (Some(_), Some(h)) => h.port,
            (Some(_), None) => self.machine.free_port(self.settings.address)?,
        };
        journal.state.hosts = self.hosts(&guests, parent_port);
        journal.save()?;
        self.ssh.journal_control_dir(journal, KIND)?;
        self.ssh.write(
            &self.targets(&guests),
            self.settings.connect_timeout,
            self.settings.control_persist,
        )?;
        self.boot(journal, &guests)
    }
    /// Journals, defines and starts every network of the lab not yet there.
    pub(super) fn define_networks(
        &self,
        journal: &mut Journal,
        parent: &str,
    ) -> anyhow::Result<()> {
        for net in &self.settings.networks {
            let known = journal
                .state
                .live()
                .any(|r| r.kind == network::NETWORK && r.name == net.name);
            if !known {
                self.define_network(journal, net, parent)?;
            }
        }
        Ok(())
    }

    fn define_network(
        &self,
        journal: &mut Journal,
        net: &NetEntry,
        parent: &str,
    ) -> anyhow::Result<()> {
        let state = &journal.state;
        let spec = network::NetSpec {
            name: network::name(&state.run_id, &net.name),
            lab: state.lab.clone(),
            run: state.run_id.clone(),
            role: net.name.clone(),
            address: net.cidr().map(|(a, _)| a),
            prefix: net.cidr().map_or(0, |(_, p)| p),
            mtu: net.mtu,
        };
        let template = match &self.settings.network_template {
            None => network::TEMPLATE.to_string(),
            Some(path) => network::read_template(path)?,
        };
        let xml = spec.render(&template)?;
        let path = self
            .workspace
            .join("lab")
            .join(format!("{}.net.xml", spec.name));
        crate::workspace::atomic::write(&path, xml.as_bytes())?;
        let virsh = self.virsh()?;
        let data = json!({ "network": spec.name, "uri": virsh.uri, "xml": path });
        let id = journal.begin_resource(
            KIND,
            network::NETWORK,
            &net.name,
            Layer::Network,
            Some(parent),
            data,
        )?;
        virsh.call_ok(&["net-define", &path.to_string_lossy()])?;
        virsh.call_ok(&["net-start", &spec.name])?;
        journal.set_status(&id, Status::Created)
    }
}
