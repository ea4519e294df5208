//! The `static` provider: hosts that already exist. `provision` creates nothing on them: it
//! writes the run's ssh_config, waits (bounded, with backoff) until each host answers over
//! ssh through a master of its own, journaled, and, when asked, until cloud-init is done;
//! cleanup stops the masters and leaves the hosts as they were.

use std::path::Path;

use serde_json::json;

use super::settings::{KIND, Settings};
use crate::exec::tools::Tool;
use crate::exit::{Kind, fail};
use crate::provider::interface::{Destroyed, Owner, Provider};
use crate::provider::ssh::{self, Ssh, Target};
use crate::provider::tunnel;
use crate::workspace::journal::{Host, Journal, Layer, Resource, Status};

/// The journal kind of an ssh master.
const MASTER: &str = "ssh-master";
/// The journal kind of a listed host: released at cleanup, never touched.
const HOST: &str = "static-host";

pub struct StaticHosts {
    settings: Settings,
    ssh: Ssh,
}

impl StaticHosts {
    pub fn new(settings: Settings, workspace: &Path) -> StaticHosts {
        let workspace = std::path::absolute(workspace).unwrap_or_else(|_| workspace.to_path_buf());
        StaticHosts {
            settings,
            ssh: Ssh::new(&workspace),
        }
    }

    fn targets(&self) -> Vec<Target> {
        let hosts = self.settings.hosts.iter();
        hosts
            .map(|h| Target {
                name: h.name.clone(),
                address: h.address.clone(),
                port: h.port,
                user: h.user.clone(),
                key: h
                    .key
                    .as_ref()
                    .map(|k| std::path::absolute(k).unwrap_or(k.clone())),
                jump: h.jump.clone(),
            })
            .collect()
    }

    /// Hosts reached first come first: a jump host before the hosts behind it.
    fn in_reach_order(&self) -> Vec<&str> {
        let mut order: Vec<&str> = Vec::new();
        while order.len() < self.settings.hosts.len() {
            for h in &self.settings.hosts {
                let ready = h.jump.as_deref().is_none_or(|j| order.contains(&j));
                if ready && !order.contains(&h.name.as_str()) {
                    order.push(&h.name);
                }
            }
        }
        order
    }

    /// Waits until `host` answers over ssh, with backoff, for at most the lab's `wait`.
    fn reach(&self, journal: &mut Journal, host: &str) -> anyhow::Result<()> {
        let parent = self.hold(journal, host)?;
        let known = journal
            .state
            .live()
            .any(|r| r.kind == MASTER && r.name == host);
        let id = match known {
            true => None,
            false => {
                let data = json!({ "host": host, "config": self.ssh.config });
                let parent = Some(parent.as_str());
                Some(journal.begin_resource(KIND, MASTER, host, Layer::Process, parent, data)?)
            }
        };
        self.ssh.wait_up(host, self.settings.wait)?;
        if let Some(id) = id {
            journal.set_status(&id, Status::Created)?;
        }
        if self.settings.cloud_init {
            self.wait_for_cloud_init(host)?;
        }
        Ok(())
    }

    /// The journal's record of a listed host (the lab's host layer; nothing is made).
    fn hold(&self, journal: &mut Journal, host: &str) -> anyhow::Result<String> {
        let known = journal
            .state
            .live()
            .find(|r| r.kind == HOST && r.name == host);
        if let Some(r) = known {
            return Ok(r.id.clone());
        }
        let id = journal.begin_resource(KIND, HOST, host, Layer::Host, None, json!({}))?;
        journal.set_status(&id, Status::Created)?;
        Ok(id)
    }

    fn wait_for_cloud_init(&self, host: &str) -> anyhow::Result<()> {
        match self.ssh.run(
            host,
            &["cloud-init", "status", "--wait"],
            self.settings.wait,
        )? {
            Some(0) => Ok(()),
            Some(code) => Err(fail(
                Kind::Infra,
                format!("`cloud-init status --wait` on `{host}` exited {code}"),
            )),
            None => Err(fail(
                Kind::Infra,
                format!("cloud-init on `{host}` was not done within the lab's wait"),
            )),
        }
    }

    fn hosts(&self) -> Vec<Host> {
        let hosts = self.settings.hosts.iter();
        hosts
            .map(|h| Host {
                name: h.name.clone(),
                address: h.address.clone(),
                port: h.port,
                groups: h.groups.clone(),
                connection: "ssh".into(),
                user: Some(h.user.clone()),
                ports: Default::default(),
            })
            .collect()
    }
}

impl Owner for StaticHosts {
    fn name(&self) -> &'static str {
        KIND
    }

    fn destroy(&self, resource: &Resource) -> anyhow::Result<Destroyed> {
        match resource.kind.as_str() {
            MASTER => match self.ssh.stop_master(&resource.name) {
                true => Ok(Destroyed::Now),
                false => Ok(Destroyed::AlreadyGone),
            },
            tunnel::KIND => tunnel::stop(resource),
            ssh::SOCKET_DIR => ssh::remove_control_dir(resource),
            // Released: the host existed before the run and stays as it is.
            HOST => Ok(Destroyed::Now),
            other => anyhow::bail!("the static provider has no resource kind `{other}`"),
        }
    }
}

impl Provider for StaticHosts {
    fn acquire(&self, journal: &mut Journal) -> anyhow::Result<()> {
        self.ssh.journal_control_dir(journal, KIND)?;
        self.ssh.write(
            &self.targets(),
            self.settings.connect_timeout,
            self.settings.control_persist,
        )?;
        journal.state.hosts = self.hosts();
        journal.save()?;
        for host in self.in_reach_order() {
            self.reach(journal, host)?;
        }
        if let Some(host) = &self.settings.tunnel {
            tunnel::open(&self.ssh, journal, KIND, host)?;
        }
        Ok(())
    }

    fn build(&self, _journal: &mut Journal) -> anyhow::Result<()> {
        Ok(())
    }

    fn reconcile(&self, _journal: &mut Journal) -> anyhow::Result<()> {
        Ok(())
    }

    /// A master started by Ansible through the run's ssh_config (or one whose journal entry
    /// a killed rollci never wrote) is found by its control socket.
    fn find_strays(&self, journal: &mut Journal) -> anyhow::Result<()> {
        tunnel::find_strays(journal, KIND)?;
        for host in &self.settings.hosts {
            let known = journal
                .state
                .live()
                .any(|r| r.kind == MASTER && r.name == host.name);
            if !known && self.ssh.config.exists() && self.ssh.master_up(&host.name) {
                let data = json!({ "host": host.name, "config": self.ssh.config });
                let id =
                    journal.begin_resource(KIND, MASTER, &host.name, Layer::Process, None, data)?;
                journal.set_status(&id, Status::Created)?;
            }
        }
        Ok(())
    }

    fn socks(&self, journal: &Journal) -> Option<String> {
        tunnel::address(journal, self.settings.tunnel.as_deref()?)
    }

    fn vars(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut vars = serde_json::Map::new();
        vars.insert("rollci_ssh_config".into(), json!(self.ssh.config));
        vars
    }

    fn tool_env(&self) -> Vec<(String, String)> {
        self.ssh.tool_env()
    }

    fn tools(&self) -> Vec<Tool> {
        let mut tools = vec![Tool::new("ssh", "reaching the static hosts")];
        let listed = self.settings.tools.iter();
        tools.extend(listed.map(|t| Tool::new(t, "listed in [provider] tools")));
        tools
    }
}
