//! The libvirt provider at the seam: what it acquires (the parent, when there is one),
//! builds, finds after a crash and destroys.

use anyhow::Context;
use serde_json::json;

use super::domain::Accel;
use super::image::Image;
use super::machine::Machine;
use super::network;
use super::provider::{DISK, DOMAIN, Libvirt, MASTER, PARENT, RUN_DIR};
use super::settings::KIND;
use super::virsh::Virsh;
use crate::exec::tools::Tool;
use crate::provider::interface::{Destroyed, Finding, Owner, Provider};
use crate::provider::ssh;
use crate::provider::static_hosts;
use crate::provider::strays;
use crate::workspace::journal::{Journal, Layer, Resource, Status};

impl Owner for Libvirt {
    fn name(&self) -> &'static str {
        KIND
    }

    /// The parent's ssh master and tunnel are journaled by the `static` code that reaches it.
    fn owns(&self, owner: &str) -> bool {
        owner == KIND || (owner == static_hosts::KIND && self.settings.parent.is_some())
    }

    fn destroy(&self, resource: &Resource) -> anyhow::Result<Destroyed> {
        if resource.owner == static_hosts::KIND
            && let Some(parent) = self.parent_hosts()
        {
            return parent.destroy(resource);
        }
        let gone = |now: bool| match now {
            true => Destroyed::Now,
            false => Destroyed::AlreadyGone,
        };
        let path = || resource.data["path"].as_str().context("no path journaled");
        match resource.kind.as_str() {
            DOMAIN => {
                let name = resource.data["domain"]
                    .as_str()
                    .context("domain without a name")?;
                Ok(gone(self.virsh_of(resource)?.remove(name)?))
            }
            network::NETWORK => {
                let name = resource.data["network"]
                    .as_str()
                    .context("network without a name")?;
                network::remove(&self.virsh_of(resource)?, name)
            }
            DISK => self.machine.remove(path()?),
            RUN_DIR => self.machine.remove_dir(path()?),
            MASTER => Ok(gone(self.ssh.stop_master(&resource.name))),
            strays::KIND => strays::stop(resource),
            ssh::SOCKET_DIR => ssh::remove_control_dir(resource),
            PARENT => Ok(Destroyed::Now),
            other => anyhow::bail!("the libvirt provider has no resource kind `{other}`"),
        }
    }
}

impl Libvirt {
    /// virsh at the URI a resource was made with (on a parent: the run's ssh wrapper,
    /// written again).
    fn virsh_of(&self, resource: &Resource) -> anyhow::Result<Virsh> {
        match resource.data["uri"].as_str() {
            Some(uri) if !uri.starts_with("qemu+ssh://") => Ok(Virsh::new(uri)),
            _ => self.virsh(),
        }
    }

    /// Networks of this run the journal missed (killed between `net-define` and the
    /// journal write): the run's name prefix is theirs alone.
    fn network_strays(
        &self,
        journal: &mut Journal,
        virsh: &Virsh,
        prefix: &str,
    ) -> anyhow::Result<()> {
        if self.settings.networks.is_empty() {
            return Ok(());
        }
        let listed = virsh.call_ok(&["net-list", "--all", "--name"])?;
        for name in listed
            .stdout
            .lines()
            .map(str::trim)
            .filter(|n| n.starts_with(prefix))
        {
            let known = journal.state.resources.iter().any(|r| {
                r.kind == network::NETWORK
                    && r.data["network"] == name
                    && r.status != Status::Destroyed
            });
            if !known {
                let data = json!({ "network": name, "uri": virsh.uri });
                let role = name[prefix.len()..].to_string();
                let id = journal.begin_resource(
                    KIND,
                    network::NETWORK,
                    &role,
                    Layer::Network,
                    None,
                    data,
                )?;
                journal.set_status(&id, Status::Created)?;
            }
        }
        Ok(())
    }
}

impl Provider for Libvirt {
    fn acquire(&self, journal: &mut Journal) -> anyhow::Result<()> {
        self.parent_id(journal)?;
        match self.parent_hosts() {
            Some(parent) => parent.acquire(journal),
            None => Ok(()),
        }
    }

    fn build(&self, journal: &mut Journal) -> anyhow::Result<()> {
        self.build_lab(journal)
    }

    fn reconcile(&self, _journal: &mut Journal) -> anyhow::Result<()> {
        Ok(())
    }

    /// Domains of this run the journal missed (rollci killed between `define` and the
    /// journal write), found by name and confirmed by their metadata tag.
    fn find_strays(&self, journal: &mut Journal) -> anyhow::Result<()> {
        if let Some(parent) = self.parent_hosts() {
            parent.find_strays(journal)?;
        }
        // What the lab's playbooks started on this machine, such as the load balancer.
        strays::adopt_marked(journal, KIND)?;
        let prefix = format!("rollci-{}-", journal.state.run_id);
        let virsh = self.virsh()?;
        let names = match virsh.names() {
            Ok(names) => names,
            // Journaled domains still fail their destroy loudly; strays cannot be looked for.
            Err(e) => {
                crate::say_err!("warning: no stray domains looked for: {e:#}");
                return Ok(());
            }
        };
        self.network_strays(journal, &virsh, &prefix)?;
        for name in names.into_iter().filter(|n| n.starts_with(&prefix)) {
            let known = journal.state.resources.iter().any(|r| {
                r.kind == DOMAIN && r.data["domain"] == name && r.status != Status::Destroyed
            });
            let ours = virsh
                .tag(&name)?
                .is_some_and(|(lab, run)| lab == journal.state.lab && run == journal.state.run_id);
            if !known && ours {
                let role = name[prefix.len()..].to_string();
                let data = json!({ "domain": name, "uri": virsh.uri });
                let id = journal.begin_resource(KIND, DOMAIN, &role, Layer::Vm, None, data)?;
                journal.set_status(&id, Status::Created)?;
            }
        }
        Ok(())
    }

    fn socks(&self, journal: &Journal) -> Option<String> {
        self.parent_hosts()?.socks(journal)
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
            Tool::new("ssh", "reaching the guests"),
            Tool::new("ssh-keygen", "the lab's key pair"),
        ];
        // On a parent, qemu-img runs there.
        if let Machine::Local = self.machine {
            tools.push(Tool::new("qemu-img", "the guests' overlay disks"));
        }
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
        found.push(
            match self
                .virsh()
                .and_then(|v| v.call(&["version"]).map(|s| (v, s)))
            {
                Ok((v, said)) if said.ok => Finding::ok("libvirt", format!("{} answers", v.uri)),
                Ok((v, said)) => {
                    Finding::missing("libvirt", format!("{}: {}", v.uri, said.stderr.trim()))
                }
                Err(e) => Finding::missing("libvirt", format!("{e:#}")),
            },
        );
        let local = matches!(self.machine, Machine::Local);
        if local && accel == Accel::Tcg && which::which("qemu-system-x86_64").is_err() {
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
