//! One ssh_config per run, shared by rollci's own ssh and by Ansible (`-F`): batch mode, a
//! connect timeout, the run's own known_hosts (learned at first contact with `accept-new`,
//! strict after that), short control sockets in the workspace and bounded masters.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

use super::interface::Destroyed;
use super::sockets;
use crate::exit::{Kind, fail};
use crate::workspace::journal::{Journal, Layer, Resource, Status};

/// The journal kind of a control socket folder outside the workspace.
pub const SOCKET_DIR: &str = "socket-dir";

/// Removes a journaled control socket folder (its masters are stopped first: they are
/// processes, a higher layer).
pub fn remove_control_dir(resource: &Resource) -> anyhow::Result<Destroyed> {
    let path = resource.data["path"].as_str().unwrap_or_default();
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(Destroyed::Now),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Destroyed::AlreadyGone),
        Err(e) => Err(e).with_context(|| format!("failed to remove `{path}`")),
    }
}

/// How rollci reaches one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub name: String,
    pub address: String,
    pub port: u16,
    pub user: String,
    pub key: Option<PathBuf>,
    pub jump: Option<String>,
}

/// The ssh files of a workspace.
#[derive(Debug, Clone)]
pub struct Ssh {
    pub config: PathBuf,
    pub known_hosts: PathBuf,
    pub control_dir: PathBuf,
    logs: PathBuf,
}

/// Why a connection attempt failed.
#[derive(Debug)]
pub enum Refusal {
    /// The host answered with another key than the one learned in this run.
    KeyChanged(String),
    /// Not (yet) reachable or not accepting us: worth another try.
    NotYet(String),
}

impl Ssh {
    pub fn new(workspace: &Path) -> Ssh {
        let dir = workspace.join("ssh");
        Ssh {
            config: dir.join("config"),
            known_hosts: dir.join("known_hosts"),
            control_dir: sockets::short_dir(&dir.join("cm"), &dir),
            logs: dir.join("logs"),
        }
    }

    /// Writes the run's ssh_config (and the folders it names).
    pub fn write(
        &self,
        targets: &[Target],
        connect: Duration,
        persist: Duration,
    ) -> anyhow::Result<()> {
        for dir in [&self.control_dir, &self.logs] {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("failed to create `{}`", dir.display()))?;
        }
        let text = self.render(targets, connect, persist);
        crate::workspace::atomic::write(&self.config, text.as_bytes())
    }

    /// The ssh_config text. Host blocks come first: ssh keeps the first value it reads.
    pub fn render(&self, targets: &[Target], connect: Duration, persist: Duration) -> String {
        let mut text =
            String::from("# Written by rollci for this run; used by rollci and Ansible (-F).\n");
        for t in targets {
            text.push_str(&format!(
                "Host {}\n  HostName {}\n  Port {}\n  User {}\n",
                t.name, t.address, t.port, t.user
            ));
            if let Some(key) = &t.key {
                text.push_str(&format!(
                    "  IdentityFile \"{}\"\n  IdentitiesOnly yes\n",
                    key.display()
                ));
            }
            if let Some(jump) = &t.jump {
                text.push_str(&format!("  ProxyJump {jump}\n"));
            }
        }
        text.push_str(&format!(
            "Host *\n  BatchMode yes\n  ConnectTimeout {}\n  UserKnownHostsFile \"{}\"\n  GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n  ControlMaster auto\n  ControlPath \"{}/%C\"\n  ControlPersist {}\n  ServerAliveInterval 15\n  ServerAliveCountMax 4\n  LogLevel ERROR\n",
            connect.as_secs().max(1),
            self.known_hosts.display(),
            self.control_dir.display(),
            persist.as_secs().max(1)
        ));
        text
    }

    /// Journals the control socket folder when it lies outside the workspace (a deep
    /// workspace's sockets go to a short folder in the temp dir), so cleanup removes it.
    pub fn journal_control_dir(
        &self,
        journal: &mut Journal,
        owner: &'static str,
    ) -> anyhow::Result<()> {
        let inside = self
            .control_dir
            .starts_with(self.config.parent().unwrap_or(Path::new("/")));
        let known = journal.state.live().any(|r| r.kind == SOCKET_DIR);
        if inside || known {
            return Ok(());
        }
        let data = serde_json::json!({ "path": self.control_dir });
        let id = journal.begin_resource(owner, SOCKET_DIR, "ssh", Layer::LabState, None, data)?;
        std::fs::create_dir_all(&self.control_dir)
            .with_context(|| format!("failed to create `{}`", self.control_dir.display()))?;
        journal.set_status(&id, Status::Created)
    }

    /// Ansible's ssh uses the run's ssh_config too.
    pub fn tool_env(&self) -> Vec<(String, String)> {
        let args = format!("-F {}", self.config.display());
        vec![("ANSIBLE_SSH_ARGS".into(), args)]
    }

    /// `ssh -F <config> <options…> <host>`: the one way rollci runs ssh.
    pub fn command(&self, host: &str, options: &[&str]) -> Command {
        let mut cmd = Command::new("ssh");
        cmd.arg("-F").arg(&self.config);
        for option in options {
            cmd.arg("-o").arg(option);
        }
        cmd.arg(host).stdin(Stdio::null()).stdout(Stdio::null());
        cmd
    }

    /// Whether this run's master to `host` is up.
    pub fn master_up(&self, host: &str) -> bool {
        let mut cmd = self.command(host, &[]);
        cmd.args(["-O", "check"]).stderr(Stdio::null());
        cmd.status().is_ok_and(|s| s.success())
    }

    /// Starts the master to `host` (the first contact: an unknown host key is learned, a
    /// changed one refused). Its stdio is never the caller's: a master holding a Jenkins
    /// `sh` step's stdout would hang the step.
    pub fn start_master(&self, host: &str) -> anyhow::Result<Result<(), Refusal>> {
        if self.master_up(host) {
            return Ok(Ok(()));
        }
        let log = self.logs.join(format!("{host}.log"));
        let stderr = std::fs::File::create(&log)
            .with_context(|| format!("failed to create `{}`", log.display()))?;
        let mut cmd = self.command(
            host,
            &["StrictHostKeyChecking=accept-new", "ControlMaster=yes"],
        );
        cmd.args(["-f", "-N"]).stderr(stderr);
        let status = cmd
            .status()
            .context("failed to run `ssh` (hint: apt-get install -y openssh-client)")?;
        let said = std::fs::read_to_string(&log)
            .unwrap_or_default()
            .trim()
            .to_string();
        Ok(match status.success() && self.master_up(host) {
            true => Ok(()),
            false
                if said.contains("IDENTIFICATION HAS CHANGED")
                    || said.contains("Host key verification failed") =>
            {
                Err(Refusal::KeyChanged(said))
            }
            false => Err(Refusal::NotYet(said)),
        })
    }

    /// Waits until `host` answers over ssh through a master of its own, with backoff, for
    /// at most `wait`; a changed host key ends the wait at once, naming the host.
    pub fn wait_up(&self, host: &str, wait: Duration) -> anyhow::Result<()> {
        let end = Instant::now() + wait;
        let mut pause = Duration::from_millis(500);
        loop {
            crate::signals::check()?;
            let said = match self.start_master(host)? {
                Ok(()) => return Ok(()),
                Err(Refusal::KeyChanged(said)) => return Err(self.key_changed(host, &said)),
                Err(Refusal::NotYet(said)) => said,
            };
            if Instant::now() + pause > end {
                return Err(fail(
                    Kind::Infra,
                    format!(
                        "host `{host}` did not answer over ssh within {}: {said}",
                        humantime::format_duration(wait)
                    ),
                ));
            }
            crate::signals::sleep(pause)?;
            pause = (pause * 2).min(Duration::from_secs(10));
        }
    }

    fn key_changed(&self, host: &str, said: &str) -> anyhow::Error {
        fail(
            Kind::Infra,
            format!(
                "host `{host}` offered a host key other than the one learned earlier in this \
                 run (`{}`): refusing to connect ({said})",
                self.known_hosts.display()
            ),
        )
    }

    /// Stops the master to `host`; false when there was none.
    pub fn stop_master(&self, host: &str) -> bool {
        let mut cmd = self.command(host, &[]);
        cmd.args(["-O", "exit"]).stderr(Stdio::null());
        cmd.status().is_ok_and(|s| s.success())
    }

    /// Runs `argv` on `host` (through its master) within `limit`; its exit status.
    pub fn run(&self, host: &str, argv: &[&str], limit: Duration) -> anyhow::Result<Option<i32>> {
        let mut cmd = self.command(host, &[]);
        cmd.arg("--").args(argv).stderr(Stdio::null());
        let mut child = cmd.spawn().context("failed to run `ssh`")?;
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if let Some(status) = child.try_wait()? {
                return Ok(status.code());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_blocks_come_before_the_defaults_and_name_everything_ansible_needs() {
        let ssh = Ssh::new(Path::new("/w/.rollci"));
        let targets = [
            Target {
                name: "bastion".into(),
                address: "203.0.113.9".into(),
                port: 2222,
                user: "ops".into(),
                key: Some("/k/id".into()),
                jump: None,
            },
            Target {
                name: "aio1".into(),
                address: "10.1.0.5".into(),
                port: 22,
                user: "root".into(),
                key: None,
                jump: Some("bastion".into()),
            },
        ];
        let text = ssh.render(&targets, Duration::from_secs(10), Duration::from_secs(600));
        let defaults = text.find("Host *").unwrap();
        assert!(text.find("Host aio1").unwrap() < defaults);
        assert!(text.contains("Host bastion\n  HostName 203.0.113.9\n  Port 2222\n  User ops\n  IdentityFile \"/k/id\""), "{text}");
        assert!(text.contains("  ProxyJump bastion\n"));
        for line in [
            "BatchMode yes",
            "StrictHostKeyChecking yes",
            "GlobalKnownHostsFile /dev/null",
            "ControlPersist 600",
            "ConnectTimeout 10",
        ] {
            assert!(text[defaults..].contains(line), "{line}: {text}");
        }
        assert!(text.contains("UserKnownHostsFile \"/w/.rollci/ssh/known_hosts\""));
        assert!(text.contains("ControlPath \"/w/.rollci/ssh/cm/%C\""));
        assert!(!text.contains("StrictHostKeyChecking no"));
    }
}
