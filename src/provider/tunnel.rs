//! A SOCKS5 tunnel through a host of the lab (`ssh -N -D 127.0.0.1:PORT HOST`, its own
//! connection, not the host's master), journaled as a process: rollci's probes and
//! persistent-resource requests then reach networks that only that host can route to.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;

use super::interface::Destroyed;
use super::ssh::Ssh;
use crate::exit::{Kind, fail};
use crate::procs;
use crate::workspace::journal::{Journal, Layer, Resource, Status};

/// The journal kind of a tunnel.
pub const KIND: &str = "socks-tunnel";
/// How long a new tunnel gets to listen.
const READY: Duration = Duration::from_secs(30);

/// The address of the live tunnel to `host` the journal holds, if its ssh still runs.
pub fn address(journal: &Journal, host: &str) -> Option<String> {
    let live = journal
        .state
        .live()
        .filter(|r| r.kind == KIND && r.name == host);
    live.filter(|r| running(r))
        .find_map(|r| Some(format!("127.0.0.1:{}", r.data["port"].as_u64()?)))
}

fn running(r: &Resource) -> bool {
    let pid = r.data["pid"].as_u64();
    let started = r.data["start_time"].as_u64();
    matches!((pid, started), (Some(p), Some(s)) if procs::is_running(p as u32, s))
}

/// Opens (or finds) the tunnel to `host` and routes rollci's requests through it.
pub fn open(
    ssh: &Ssh,
    journal: &mut Journal,
    owner: &'static str,
    host: &str,
) -> anyhow::Result<String> {
    if let Some(address) = address(journal, host) {
        crate::route::set(Some(address.clone()));
        return Ok(address);
    }
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port();
    let data = json!({ "host": host, "port": port });
    let id = journal.begin_resource(owner, KIND, host, Layer::Process, None, data)?;
    let mut cmd = ssh.command(
        host,
        &[
            "ControlMaster=no",
            "ControlPath=none",
            "ExitOnForwardFailure=yes",
        ],
    );
    cmd.args(["-N", "-D", &format!("127.0.0.1:{port}")])
        .env(procs::RUN_MARKER, &journal.state.run_id)
        .stderr(Stdio::null());
    let mut child = spawn(cmd)?;
    let pid = child.id();
    let started = procs::start_time(pid).unwrap_or_default();
    if let Some(r) = journal.state.resource_mut(&id) {
        r.data = json!({ "host": host, "port": port, "pid": pid, "start_time": started });
    }
    journal.save()?;
    let end = Instant::now() + READY;
    while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
        if let Some(status) = child.try_wait()? {
            return Err(fail(
                Kind::Infra,
                format!("the SOCKS tunnel through `{host}` ended at once ({status})"),
            ));
        }
        if Instant::now() > end {
            return Err(fail(
                Kind::Infra,
                format!("the SOCKS tunnel through `{host}` did not listen within 30s"),
            ));
        }
        crate::signals::sleep(Duration::from_millis(100))?;
    }
    journal.set_status(&id, Status::Created)?;
    let address = format!("127.0.0.1:{port}");
    crate::route::set(Some(address.clone()));
    Ok(address)
}

fn spawn(mut cmd: Command) -> anyhow::Result<std::process::Child> {
    use std::os::unix::process::CommandExt;
    // Its own group: a signal to the step's group must not end the lab's tunnel first.
    cmd.process_group(0)
        .spawn()
        .context("failed to run `ssh` (hint: apt-get install -y openssh-client)")
}

/// Stops a journaled tunnel; "already gone" when its ssh had ended.
pub fn stop(resource: &Resource) -> anyhow::Result<Destroyed> {
    if !running(resource) {
        return Ok(Destroyed::AlreadyGone);
    }
    let pid = resource.data["pid"].as_u64().unwrap_or_default() as u32;
    let started = resource.data["start_time"].as_u64().unwrap_or_default();
    procs::stop(pid, started, Duration::from_secs(5))?;
    Ok(Destroyed::Now)
}

/// A tunnel's ssh that a killed rollci started but never journaled: found by the run's
/// marker in its environment and `-D` on its command line.
pub fn find_strays(journal: &mut Journal, owner: &'static str) -> anyhow::Result<()> {
    for (pid, started) in procs::with_marker(&journal.state.run_id) {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let argv: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let is_tunnel =
            argv.first().is_some_and(|a| a.ends_with(b"ssh")) && argv.iter().any(|a| *a == b"-D");
        let known = journal
            .state
            .live()
            .any(|r| r.kind == KIND && r.data["pid"] == pid);
        if is_tunnel && !known {
            let data = json!({ "pid": pid, "start_time": started });
            let id = journal.begin_resource(owner, KIND, "stray", Layer::Process, None, data)?;
            journal.set_status(&id, Status::Created)?;
        }
    }
    Ok(())
}
