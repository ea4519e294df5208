//! Processes on this machine that carry the run's marker (`ROLLCI_RUN_ID`, inherited from
//! every tool rollci starts) but are in no journal entry: what a lab's playbooks left
//! running here (a load balancer, a daemon), adopted before a teardown and stopped by it.

use std::time::Duration;

use serde_json::json;

use super::interface::Destroyed;
use crate::procs;
use crate::workspace::journal::{Journal, Layer, Resource, Status};

/// The journal kind of an adopted process.
pub const KIND: &str = "process";
/// How long a process gets to exit on SIGTERM before SIGKILL.
const GRACE: Duration = Duration::from_secs(10);

/// Journals every live process of the run that no live resource names yet.
pub fn adopt_marked(journal: &mut Journal, owner: &'static str) -> anyhow::Result<()> {
    for (pid, started) in procs::with_marker(&journal.state.run_id) {
        let known = journal
            .state
            .live()
            .any(|r| r.data["pid"] == pid && r.data["start_time"] == started);
        if known {
            continue;
        }
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        let name = format!("stray {} (pid {pid})", comm.trim());
        let data = json!({ "pid": pid, "start_time": started });
        let id = journal.begin_resource(owner, KIND, &name, Layer::Process, None, data)?;
        journal.set_status(&id, Status::Created)?;
    }
    Ok(())
}

/// Stops an adopted process (SIGTERM, then SIGKILL after a grace period).
pub fn stop(resource: &Resource) -> anyhow::Result<Destroyed> {
    let pid = resource.data["pid"].as_u64().unwrap_or_default() as u32;
    let started = resource.data["start_time"].as_u64().unwrap_or_default();
    let running = procs::is_running(pid, started);
    procs::stop(pid, started, GRACE)?;
    Ok(match running {
        true => Destroyed::Now,
        false => Destroyed::AlreadyGone,
    })
}
