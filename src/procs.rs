//! Processes of a lab, identified by pid *and* start time so a recycled pid is never killed.

use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The environment variable every process rollci starts inherits; cleanup finds strays by it.
pub const RUN_MARKER: &str = "ROLLCI_RUN_ID";

/// Start time of a process in clock ticks since boot (field 22 of `/proc/PID/stat`), or
/// `None` when it does not exist or is a zombie.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    if fields.first() == Some(&"Z") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

/// Whether the process that had this start time still runs.
pub fn is_running(pid: u32, started: u64) -> bool {
    start_time(pid) == Some(started)
}

/// Stops a process: SIGTERM, up to `grace` to exit, then SIGKILL. "Already gone" is success.
pub fn stop(pid: u32, started: u64, grace: Duration) -> anyhow::Result<()> {
    if !is_running(pid, started) {
        return Ok(());
    }
    let target = Pid::from_raw(pid as i32);
    let _ = kill(target, Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if !is_running(pid, started) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = kill(target, Signal::SIGKILL);
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if !is_running(pid, started) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    anyhow::bail!("process {pid} survived SIGKILL")
}

/// Reads a pidfile: a decimal pid, possibly followed by whitespace.
pub fn read_pidfile(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The process group of a live process (field 5 of `/proc/PID/stat`).
pub fn group_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(2)?.parse().ok()
}

/// The live processes of group `pgid` that carry the run's marker: what a killed rollci's
/// tool left running (the marker keeps a recycled group id from ever matching).
pub fn left_in_group(pgid: u32, run_id: &str) -> Vec<(u32, u64)> {
    with_marker(run_id)
        .into_iter()
        .filter(|(pid, _)| group_of(*pid) == Some(pgid))
        .collect()
}

/// Stops every listed process (SIGTERM, `grace`, SIGKILL); returns how many were alive.
pub fn stop_all(procs: &[(u32, u64)], grace: Duration) -> usize {
    let alive: Vec<_> = procs.iter().filter(|(p, s)| is_running(*p, *s)).collect();
    for (pid, _) in &alive {
        let _ = kill(Pid::from_raw(*pid as i32), Signal::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline && alive.iter().any(|(p, s)| is_running(*p, *s)) {
        std::thread::sleep(Duration::from_millis(20));
    }
    for (pid, started) in &alive {
        if is_running(*pid, *started) {
            let _ = kill(Pid::from_raw(*pid as i32), Signal::SIGKILL);
        }
    }
    alive.len()
}

/// Every live process whose environment carries `ROLLCI_RUN_ID=<run_id>`, as (pid, start).
pub fn with_marker(run_id: &str) -> Vec<(u32, u64)> {
    let needle = format!("{RUN_MARKER}={run_id}");
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me)
        .filter(|&pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .map(|env| env.split(|&b| b == 0).any(|var| var == needle.as_bytes()))
                .unwrap_or(false)
        })
        .filter_map(|pid| Some((pid, start_time(pid)?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_kills_and_is_idempotent() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .env(RUN_MARKER, "test-run-marker-xyz")
            .spawn()
            .unwrap();
        let pid = child.id();
        let started = start_time(pid).unwrap();
        // The kernel shows the new environment once exec is done: allow a moment.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !with_marker("test-run-marker-xyz").contains(&(pid, started)) {
            assert!(Instant::now() < deadline, "marker of {pid} never seen");
            std::thread::sleep(Duration::from_millis(20));
        }
        let reaper = std::thread::spawn(move || child.wait());
        stop(pid, started, Duration::from_secs(2)).expect("stop");
        reaper.join().unwrap().unwrap();
        assert!(!is_running(pid, started));
        stop(pid, started, Duration::from_secs(2)).unwrap();
    }

    #[test]
    fn wrong_start_time_is_not_our_process() {
        let me = std::process::id();
        let started = start_time(me).unwrap();
        assert!(is_running(me, started));
        assert!(!is_running(me, started + 1));
    }
}
