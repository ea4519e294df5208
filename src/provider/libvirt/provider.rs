//! The `libvirt` provider: guests built by the pipeline. Each VM is a copy-on-write overlay
//! of the lab's base image and a domain named `rollci-<run>-<role>` tagged with the lab and
//! run in its `<metadata>`; both are journaled before they exist. All guests boot at once and
//! are waited for over ssh in parallel; teardown is VMs, then disks, idempotently.

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::json;

use super::domain::{self, Accel, Forward, Spec};
use super::image::Image;
use super::settings::{KIND, Settings, VirtType, VmEntry};
use super::virsh::{NAMESPACE, Virsh};
use crate::exec::tools::Tool;
use crate::provider::interface::{Destroyed, Finding, Owner, Provider};
use crate::provider::ssh::{self, Ssh, Target};
use crate::provider::strays;
use crate::workspace::journal::{Host, Journal, Layer, Resource, Status};

const DOMAIN: &str = "domain";
const DISK: &str = "disk";
const MASTER: &str = "ssh-master";
/// The machine the guests run on: recorded, never destroyed.
const PARENT: &str = "libvirt-host";
/// The guests' ssh user (the image's init authorizes the lab's key for root).
const USER: &str = "root";

pub struct Libvirt {
    settings: Settings,
    workspace: PathBuf,
    base_dir: PathBuf,
    ssh: Ssh,
    virsh: Virsh,
}

/// A guest as the journal knows it.
struct Guest {
    name: String,
    domain: String,
    ssh_port: u16,
    port: u16,
}

impl Libvirt {
    pub fn new(settings: Settings, workspace: &Path, base_dir: &Path) -> Libvirt {
        let workspace = std::path::absolute(workspace).unwrap_or_else(|_| workspace.to_path_buf());
        Libvirt {
            virsh: Virsh::new(&settings.uri),
            ssh: Ssh::new(&workspace),
            settings,
            base_dir: base_dir.to_path_buf(),
            workspace,
        }
    }

    fn key(&self) -> PathBuf {
        self.workspace.join("ssh").join("id_ed25519")
    }

    fn disk_dir(&self) -> PathBuf {
        self.workspace.join("lab").join("disks")
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

    /// KVM when it can run guests, TCG otherwise; and why.
    pub fn accel(&self) -> (Accel, String) {
        match self.settings.virt_type {
            VirtType::Kvm => (Accel::Kvm, "the lab asks for kvm".into()),
            VirtType::Qemu => (Accel::Tcg, "the lab asks for qemu (TCG)".into()),
            VirtType::Auto => Accel::detect(),
        }
    }

    fn guests(&self, journal: &Journal) -> Vec<Guest> {
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
        let disk = self.disk_dir().join(format!("{domain}.qcow2"));
        let parent = self.parent_id(journal)?;
        let disk_id = journal.begin_resource(
            KIND,
            DISK,
            &vm.name,
            Layer::LabState,
            Some(&parent),
            json!({ "path": disk }),
        )?;
        image.overlay(&disk)?;
        journal.set_status(&disk_id, Status::Created)?;

        let ssh_port = free_port(self.settings.address)?;
        let port = match vm.port {
            Some(_) => free_port(self.settings.address)?,
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
        if let Some(dir) = console.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("failed to create `{}`", dir.display()))?;
        }
        let spec = Spec {
            name: domain.clone(),
            lab: journal.state.lab.clone(),
            run: journal.state.run_id.clone(),
            role: vm.name.clone(),
            namespace: NAMESPACE,
            virt_type: accel.virt_type(),
            cpu_mode: accel.cpu_mode(),
            memory_mib: self.settings.memory_mib,
            vcpus: self.settings.vcpus,
            kernel: image.kernel.clone(),
            initrd: image.initrd.clone(),
            cmdline: domain::cmdline(&image.cmdline, &vm.name, key),
            disk: disk.clone(),
            console_log: console.clone(),
            qemu_label: self.settings.qemu_label.clone(),
            netdev: domain::netdev(self.settings.address, &forwards),
        };
        let xml = spec.render(&self.template()?)?;
        let xml_path = self.workspace.join("lab").join(format!("{domain}.xml"));
        crate::workspace::atomic::write(&xml_path, xml.as_bytes())?;
        let data = json!({
            "domain": domain, "uri": self.settings.uri, "ssh_port": ssh_port, "port": port,
            "console": console, "xml": xml_path,
        });
        let id = journal.begin_resource(KIND, DOMAIN, &vm.name, Layer::Vm, Some(&disk_id), data)?;
        self.virsh.define(&xml_path)?;
        journal.set_status(&id, Status::Created)
    }

    fn console_log(&self, journal: &Journal, domain: &str) -> PathBuf {
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

    fn parent_id(&self, journal: &mut Journal) -> anyhow::Result<String> {
        if let Some(r) = journal.state.live().find(|r| r.kind == PARENT) {
            return Ok(r.id.clone());
        }
        let data = json!({ "uri": self.settings.uri });
        let id = journal.begin_resource(KIND, PARENT, "host", Layer::Host, None, data)?;
        journal.set_status(&id, Status::Created)?;
        Ok(id)
    }

    /// The lab's hosts: this machine (when the lab names it) and every guest.
    fn hosts(&self, guests: &[Guest], parent_port: u16) -> Vec<Host> {
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
            })
            .collect();
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
            });
        }
        hosts
    }

    fn targets(&self, guests: &[Guest]) -> Vec<Target> {
        let targets = guests.iter().map(|g| Target {
            name: g.name.clone(),
            address: self.settings.address.to_string(),
            port: g.ssh_port,
            user: USER.into(),
            key: Some(self.key()),
            jump: None,
        });
        targets.collect()
    }

    /// Starts every guest, then waits for all of them over ssh at once.
    fn boot(&self, journal: &mut Journal, guests: &[Guest]) -> anyhow::Result<()> {
        for g in guests {
            self.virsh.start(&g.domain)?;
        }
        let mut waiting = Vec::new();
        for g in guests {
            let known = journal
                .state
                .live()
                .any(|r| r.kind == MASTER && r.name == g.name);
            if !known {
                let data = json!({ "host": g.name, "config": self.ssh.config });
                let id =
                    journal.begin_resource(KIND, MASTER, &g.name, Layer::Process, None, data)?;
                waiting.push(id);
            }
        }
        let results: Vec<anyhow::Result<()>> = std::thread::scope(|scope| {
            let handles: Vec<_> = guests
                .iter()
                .map(|g| scope.spawn(|| self.ssh.wait_up(&g.name, self.settings.wait)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("panicked")))
                })
                .collect()
        });
        for id in waiting {
            journal.set_status(&id, Status::Created)?;
        }
        for (g, result) in guests.iter().zip(results) {
            if let Err(e) = result {
                let console = self.console_log(journal, &g.domain);
                return Err(e.context(format!(
                    "guest `{}` ({}) did not come up; its console: {}{}",
                    g.name,
                    g.domain,
                    console.display(),
                    tail(&console)
                )));
            }
        }
        Ok(())
    }
}

/// A free TCP port on `address` now (QEMU binds it when the guest starts).
fn free_port(address: Ipv4Addr) -> anyhow::Result<u16> {
    let listener = TcpListener::bind((address, 0))
        .with_context(|| format!("failed to find a free port on {address}"))?;
    Ok(listener.local_addr()?.port())
}

/// The last lines of a console log, for an error message.
fn tail(path: &Path) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&text[text.len().saturating_sub(1500)..]).into_owned();
    match text.trim().is_empty() {
        true => " (empty)".into(),
        false => format!("\n--- console (tail)\n{}", text.trim_end()),
    }
}

impl Owner for Libvirt {
    fn name(&self) -> &'static str {
        KIND
    }

    fn destroy(&self, resource: &Resource) -> anyhow::Result<Destroyed> {
        let gone = |now: bool| {
            if now {
                Destroyed::Now
            } else {
                Destroyed::AlreadyGone
            }
        };
        match resource.kind.as_str() {
            DOMAIN => {
                let name = resource.data["domain"]
                    .as_str()
                    .context("domain without a name")?;
                let uri = resource.data["uri"].as_str().unwrap_or(&self.settings.uri);
                Ok(gone(Virsh::new(uri).remove(name)?))
            }
            DISK => {
                let path = resource.data["path"]
                    .as_str()
                    .context("disk without a path")?;
                match std::fs::remove_file(path) {
                    Ok(()) => Ok(Destroyed::Now),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        Ok(Destroyed::AlreadyGone)
                    }
                    Err(e) => Err(e).with_context(|| format!("failed to remove `{path}`")),
                }
            }
            MASTER => Ok(gone(self.ssh.stop_master(&resource.name))),
            strays::KIND => strays::stop(resource),
            ssh::SOCKET_DIR => ssh::remove_control_dir(resource),
            PARENT => Ok(Destroyed::Now),
            other => anyhow::bail!("the libvirt provider has no resource kind `{other}`"),
        }
    }
}

impl Provider for Libvirt {
    fn acquire(&self, journal: &mut Journal) -> anyhow::Result<()> {
        self.parent_id(journal)?;
        Ok(())
    }

    fn build(&self, journal: &mut Journal) -> anyhow::Result<()> {
        let image = Image::resolve(&self.settings.image, &self.base_dir)?;
        let key = self.public_key()?;
        for vm in &self.settings.vms {
            self.define(journal, vm, &image, &key)?;
        }
        let guests = self.guests(journal);
        let parent_port = match journal.state.hosts.iter().find(|h| h.connection == "local") {
            Some(h) => h.port,
            None => free_port(self.settings.address)?,
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

    fn reconcile(&self, _journal: &mut Journal) -> anyhow::Result<()> {
        Ok(())
    }

    /// Domains of this run the journal missed (rollci killed between `define` and the
    /// journal write), found by name and confirmed by their metadata tag.
    fn find_strays(&self, journal: &mut Journal) -> anyhow::Result<()> {
        // What the lab's playbooks started on this machine, such as the load balancer.
        strays::adopt_marked(journal, KIND)?;
        let prefix = format!("rollci-{}-", journal.state.run_id);
        let names = match self.virsh.names() {
            Ok(names) => names,
            // Journaled domains still fail their destroy loudly; strays cannot be looked for.
            Err(e) => {
                crate::say_err!("warning: no stray domains looked for: {e:#}");
                return Ok(());
            }
        };
        for name in names.into_iter().filter(|n| n.starts_with(&prefix)) {
            let known = journal.state.resources.iter().any(|r| {
                r.kind == DOMAIN && r.data["domain"] == name && r.status != Status::Destroyed
            });
            let ours = self
                .virsh
                .tag(&name)?
                .is_some_and(|(lab, run)| lab == journal.state.lab && run == journal.state.run_id);
            if !known && ours {
                let role = name[prefix.len()..].to_string();
                let data = json!({ "domain": name, "uri": self.settings.uri });
                let id = journal.begin_resource(KIND, DOMAIN, &role, Layer::Vm, None, data)?;
                journal.set_status(&id, Status::Created)?;
            }
        }
        Ok(())
    }

    fn vars(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut vars = serde_json::Map::new();
        vars.insert("rollci_ssh_config".into(), json!(self.ssh.config));
        vars.insert("rollci_lab_dir".into(), json!(self.workspace.join("lab")));
        vars
    }

    fn tool_env(&self) -> Vec<(String, String)> {
        self.ssh.tool_env()
    }

    fn tools(&self) -> Vec<Tool> {
        let mut tools = vec![
            Tool::new("virsh", "driving libvirt"),
            Tool::new("qemu-img", "the guests' overlay disks"),
            Tool::new("ssh", "reaching the guests"),
            Tool::new("ssh-keygen", "the lab's key pair"),
        ];
        let listed = self.settings.tools.iter();
        tools.extend(listed.map(|t| Tool::new(t, "listed in [provider] tools")));
        tools
    }

    fn diagnose(&self) -> Vec<Finding> {
        let (accel, why) = self.accel();
        let mut found = vec![Finding::ok(
            "acceleration",
            format!("{}: {why}", accel.virt_type()),
        )];
        found.push(match self.virsh.call(&["version"]) {
            Ok(said) if said.ok => Finding::ok("libvirt", format!("{} answers", self.settings.uri)),
            Ok(said) => Finding::missing(
                "libvirt",
                format!("{}: {}", self.settings.uri, said.stderr.trim()),
            ),
            Err(e) => Finding::missing("libvirt", format!("{e:#}")),
        });
        if accel == Accel::Tcg && which::which("qemu-system-x86_64").is_err() {
            found.push(Finding::missing(
                "qemu",
                "qemu-system-x86_64 not found (apt-get install -y qemu-system-x86)".into(),
            ));
        }
        found.push(match &self.settings.image.dir {
            Some(dir) => match Image::from_dir(dir) {
                Ok(_) => Finding::ok("image", dir.display().to_string()),
                Err(e) => Finding::missing("image", e.to_string()),
            },
            None => Finding::ok(
                "image",
                "built or found by the lab's image command at provision".into(),
            ),
        });
        found
    }
}
