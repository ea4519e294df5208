//! The `local` provider: hosts are loopback addresses of this machine (Linux routes all of
//! 127/8 to `lo`), VMs are folders, and processes are found by their pidfiles.

mod files;
mod logs;
mod settings;

pub use settings::{KIND, Settings};

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde_json::json;

use super::interface::{Destroyed, KeptLogs, Owner, Provider};
use crate::exec::tools::Tool;
use crate::procs;
use crate::workspace::journal::{Host, Journal, Layer, Resource, Status};

/// How long a process gets to exit on SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);

pub struct Local {
    settings: Settings,
    lab_dir: PathBuf,
}

impl Local {
    pub fn new(settings: Settings, workspace: &Path) -> Local {
        let workspace = std::path::absolute(workspace).unwrap_or_else(|_| workspace.to_path_buf());
        Local {
            settings,
            lab_dir: workspace.join("lab"),
        }
    }

    /// Creates a folder, journaled first; a live one of the same name is kept.
    fn ensure_dir(
        &self,
        journal: &mut Journal,
        name: &str,
        layer: Layer,
        parent: Option<&str>,
    ) -> anyhow::Result<String> {
        if let Some(r) = journal
            .state
            .live()
            .find(|r| r.kind == "dir" && r.name == name)
        {
            return Ok(r.id.clone());
        }
        let path = self.path_of(name);
        let id =
            journal.begin_resource(KIND, "dir", name, layer, parent, json!({ "path": path }))?;
        std::fs::create_dir_all(&path)
            .with_context(|| format!("failed to create `{}`", path.display()))?;
        journal.set_status(&id, Status::Created)?;
        Ok(id)
    }

    fn path_of(&self, name: &str) -> PathBuf {
        match name {
            "lab" => self.lab_dir.clone(),
            "run" => self.run_dir(),
            _ => self.lab_dir.join(name),
        }
    }

    /// The folder of pidfiles and unix sockets (see [`super::sockets::short_dir`]).
    fn run_dir(&self) -> PathBuf {
        super::sockets::short_dir(&self.lab_dir.join("run"), &self.lab_dir)
    }

    fn lab_id(&self, journal: &Journal) -> anyhow::Result<String> {
        journal
            .state
            .live()
            .find(|r| r.kind == "dir" && r.name == "lab")
            .map(|r| r.id.clone())
            .context("the lab folder is not in the journal: run `rollci provision` first")
    }

    /// The deepest live folder resource holding `path`: a process's parent.
    fn owner_of(&self, journal: &Journal, path: &Path) -> Option<String> {
        journal
            .state
            .live()
            .filter(|r| r.kind == "dir")
            .filter_map(|r| Some((r, PathBuf::from(r.data.get("path")?.as_str()?))))
            .filter(|(_, dir)| path.starts_with(dir))
            .max_by_key(|(_, dir)| dir.components().count())
            .map(|(r, _)| r.id.clone())
    }

    fn adopt_process(
        &self,
        journal: &mut Journal,
        pid: u32,
        started: u64,
        name: &str,
        parent: Option<String>,
    ) -> anyhow::Result<()> {
        let known = journal.state.live().any(|r| {
            r.kind == "process" && r.data["pid"] == pid && r.data["start_time"] == started
        });
        if known {
            return Ok(());
        }
        let data = json!({ "pid": pid, "start_time": started });
        let id = journal.begin_resource(
            KIND,
            "process",
            name,
            Layer::Process,
            parent.as_deref(),
            data,
        )?;
        journal.set_status(&id, Status::Created)
    }
}

impl Owner for Local {
    fn name(&self) -> &'static str {
        KIND
    }

    fn destroy(&self, resource: &Resource) -> anyhow::Result<Destroyed> {
        match resource.kind.as_str() {
            "process" => destroy_process(resource),
            "dir" => destroy_dir(resource),
            other => anyhow::bail!("the local provider has no resource kind `{other}`"),
        }
    }
}

impl Provider for Local {
    fn acquire(&self, journal: &mut Journal) -> anyhow::Result<()> {
        self.ensure_dir(journal, "lab", Layer::Host, None)?;
        if journal.state.hosts.is_empty() {
            let addresses = self.settings.addresses();
            let port = pick_port(&addresses, self.settings.port, &[])?;
            let mut taken = vec![port];
            let mut named = std::collections::BTreeMap::new();
            for name in &self.settings.ports {
                let p = pick_port(&addresses, 0, &taken)?;
                taken.push(p);
                named.insert(name.clone(), p);
            }
            journal.state.hosts = hosts(&addresses, port, &named);
            journal.save()?;
        }
        Ok(())
    }

    fn build(&self, journal: &mut Journal) -> anyhow::Result<()> {
        let lab = self.lab_id(journal)?;
        self.ensure_dir(journal, "data", Layer::LabState, Some(&lab))?;
        self.ensure_dir(journal, "run", Layer::Network, Some(&lab))?;
        self.ensure_dir(journal, "lb", Layer::Network, Some(&lab))?;
        for i in 1..=self.settings.nodes {
            self.ensure_dir(journal, &format!("nodes/node{i}"), Layer::Vm, Some(&lab))?;
        }
        Ok(())
    }

    fn reconcile(&self, journal: &mut Journal) -> anyhow::Result<()> {
        mark_exited(journal)?;
        let mut found = files::by_extension(&self.lab_dir, "pid").collect::<Vec<_>>();
        let run = self.run_dir();
        if !run.starts_with(&self.lab_dir) {
            found.extend(files::by_extension(&run, "pid"));
        }
        for pidfile in found {
            let Some(pid) = procs::read_pidfile(&pidfile) else {
                continue;
            };
            let Some(started) = procs::start_time(pid) else {
                continue;
            };
            let name = pidfile
                .strip_prefix(&self.lab_dir)
                .or_else(|_| pidfile.strip_prefix(run.parent().unwrap_or(&run)))
                .unwrap_or(&pidfile);
            let parent = self.owner_of(journal, &pidfile);
            self.adopt_process(journal, pid, started, &name.display().to_string(), parent)?;
        }
        Ok(())
    }

    fn find_strays(&self, journal: &mut Journal) -> anyhow::Result<()> {
        self.reconcile(journal)?;
        let run_id = journal.state.run_id.clone();
        for (pid, started) in procs::with_marker(&run_id) {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            let name = format!("stray {} (pid {pid})", comm.trim());
            let parent = self.lab_id(journal).ok();
            self.adopt_process(journal, pid, started, &name, parent)?;
        }
        Ok(())
    }

    fn keep_logs(&self, journal: &Journal, into: &Path) -> anyhow::Result<KeptLogs> {
        if self.lab_id(journal).is_err() {
            return Ok(KeptLogs::default());
        }
        logs::keep(&self.lab_dir, into)
    }

    fn vars(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut vars = serde_json::Map::new();
        vars.insert("rollci_lab_dir".into(), json!(self.lab_dir));
        vars.insert("rollci_run_dir".into(), json!(self.run_dir()));
        vars
    }

    fn tools(&self) -> Vec<Tool> {
        let mut tools = vec![Tool::new(
            "/usr/bin/python3",
            "ansible_python_interpreter of the local hosts",
        )];
        tools.extend(
            self.settings
                .tools
                .iter()
                .map(|t| Tool::new(t, "listed in [provider] tools")),
        );
        tools
    }
}

fn hosts(
    addresses: &[Ipv4Addr],
    port: u16,
    ports: &std::collections::BTreeMap<String, u16>,
) -> Vec<Host> {
    addresses
        .iter()
        .enumerate()
        .map(|(i, address)| Host {
            name: if i == 0 {
                "lb".into()
            } else {
                format!("node{i}")
            },
            address: address.to_string(),
            port,
            groups: vec![if i == 0 { "lb".into() } else { "nodes".into() }],
            connection: "local".into(),
            user: None,
            ports: ports.clone(),
        })
        .collect()
}

/// A port free on every address (the configured one, or one the kernel hands out) and not
/// one of `taken`.
fn pick_port(addresses: &[Ipv4Addr], wanted: u16, taken: &[u16]) -> anyhow::Result<u16> {
    let free_everywhere = |port: u16| {
        !taken.contains(&port)
            && addresses
                .iter()
                .all(|a| TcpListener::bind(SocketAddrV4::new(*a, port)).is_ok())
    };
    if wanted != 0 {
        anyhow::ensure!(
            free_everywhere(wanted),
            "port {wanted} is in use on one of {addresses:?}"
        );
        return Ok(wanted);
    }
    for _ in 0..50 {
        let probe = TcpListener::bind(SocketAddrV4::new(addresses[0], 0))
            .with_context(|| format!("failed to bind {}:0", addresses[0]))?;
        let port = probe.local_addr()?.port();
        drop(probe);
        if free_everywhere(port) {
            return Ok(port);
        }
    }
    anyhow::bail!("no port free on all of {addresses:?} after 50 tries")
}

/// Journaled processes that have exited on their own (an upgrade restarts nodes).
fn mark_exited(journal: &mut Journal) -> anyhow::Result<()> {
    let gone: Vec<String> = journal
        .state
        .live()
        .filter(|r| r.kind == "process")
        .filter(|r| !process_running(r))
        .map(|r| r.id.clone())
        .collect();
    for id in gone {
        journal.set_status(&id, Status::Destroyed)?;
    }
    Ok(())
}

fn process_identity(r: &Resource) -> anyhow::Result<(u32, u64)> {
    let pid = r.data["pid"]
        .as_u64()
        .context("process resource without pid")?;
    let started = r.data["start_time"]
        .as_u64()
        .context("process resource without start_time")?;
    Ok((pid as u32, started))
}

fn process_running(r: &Resource) -> bool {
    process_identity(r).is_ok_and(|(pid, started)| procs::is_running(pid, started))
}

fn destroy_process(r: &Resource) -> anyhow::Result<Destroyed> {
    let (pid, started) = process_identity(r)?;
    if !procs::is_running(pid, started) {
        return Ok(Destroyed::AlreadyGone);
    }
    procs::stop(pid, started, STOP_GRACE)?;
    Ok(Destroyed::Now)
}

fn destroy_dir(r: &Resource) -> anyhow::Result<Destroyed> {
    let path = r.data["path"]
        .as_str()
        .context("dir resource without path")?;
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(Destroyed::Now),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Destroyed::AlreadyGone),
        Err(e) => Err(e).with_context(|| format!("failed to remove `{path}`")),
    }
}
