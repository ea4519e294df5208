//! The fault matrix (`make test-faults`, part of `make test`): for each provider, each step
//! and action of a small lab, a fault is injected — an action failing once or always,
//! `kill -9` or SIGTERM of rollci at exact moments (the debug build's stopping points,
//! `src/faultpoint.rs`: between "journaled as creating" and "the provider answered", at a
//! step's start, mid-cleanup), or the remote side failing. After each case: `rollci cleanup`
//! twice (the second must change nothing), the provider itself is asked that nothing of the
//! run is alive, `status` must name where the run stopped and call the flow incomplete.
//! Each provider's table (case, exit, leaks, journal errors, seconds) is printed and kept in
//! `target/faults/`, where `make test` prints them all at the end.

mod journal;
mod libvirt;
mod local;
mod mimic;
mod nova;
mod static_hosts;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

use crate::lab::{Lab, ROOT};

/// Secrets every case's rollci has in its environment (a cloud password, a Jenkins token,
/// an Elasticsearch key, as a Jenkins agent would): none may show in any file the run wrote
/// nor in what it printed, though the lab's actions print their whole environment.
pub const SECRETS: [(&str, &str); 3] = [
    ("OS_PASSWORD", "faults-os-password-7Qx2"),
    ("JENKINS_API_TOKEN", "faults-jenkins-token-9Vb4"),
    ("ROLLCI_ES_API_KEY", "faults-es-key-3Lm8"),
];

/// How a case ends the run early.
#[derive(Clone, Copy, Debug)]
pub enum Stop {
    Kill9,
    Term,
}

/// One row of the matrix.
pub struct Row {
    pub case: String,
    pub exit: Option<i32>,
    pub leaks: Vec<String>,
    pub journal_errors: Vec<String>,
    pub secs: f64,
}

/// How one case's run ended: its exit code and the one wanted, and whether `status` must
/// show a step that did not pass.
pub struct Ran<'a> {
    pub lab: &'a Lab,
    pub env: &'a [(&'a str, String)],
    pub exit: Option<i32>,
    pub want: Option<i32>,
    pub failed: bool,
    pub started: Instant,
}

/// One case's row: [`settle`], the exit code checked, the logs printed when anything is
/// wrong; `leaks` is the provider's own look at what is alive.
pub fn row(name: String, ran: Ran, leaks: impl Fn(&Value) -> Vec<String>) -> Row {
    let (leaks, mut journal_errors) = settle(ran.lab, ran.env, ran.failed, leaks);
    if ran.exit != ran.want {
        journal_errors.push(format!("run exited {:?}, not {:?}", ran.exit, ran.want));
    }
    if !leaks.is_empty() || !journal_errors.is_empty() {
        eprintln!("{name}\n{}", logs(ran.lab));
    }
    Row {
        case: name,
        exit: ran.exit,
        leaks,
        journal_errors,
        secs: ran.started.elapsed().as_secs_f64(),
    }
}

/// `rollci run` with the run stopped by `stop` when it reaches `point`. Returns rollci's
/// exit code (`None`: killed) and what it printed. Panics when the point is never reached.
pub fn run_stopped_at(lab: &Lab, env: &[(&str, String)], point: &str, stop: Stop) -> Option<i32> {
    let marker = lab.dir.path().join("stopped-at");
    let _ = std::fs::remove_file(&marker);
    let mut cmd = lab.std_cmd(&["run"]);
    cmd.env("ROLLCI_TEST_STOP_AT", point)
        .env("ROLLCI_TEST_STOP_FILE", &marker)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log_file(lab, "run")))
        .stderr(Stdio::from(log_file(lab, "run")))
        .envs(SECRETS);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    wait_for_point(&mut child, &marker, point, lab);
    let signal = match stop {
        Stop::Kill9 => Signal::SIGKILL,
        Stop::Term => Signal::SIGTERM,
    };
    kill(Pid::from_raw(child.id() as i32), signal).unwrap();
    wait_bounded(
        &mut child,
        Duration::from_secs(300),
        "rollci after the signal",
    )
}

/// `rollci ARGS` to its end (bounded), its output appended to the case's log.
pub fn run_to_end(lab: &Lab, env: &[(&str, String)], args: &[&str]) -> Option<i32> {
    let mut cmd = lab.std_cmd(args);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(log_file(lab, args[0])))
        .stderr(Stdio::from(log_file(lab, args[0])))
        .envs(SECRETS);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    wait_bounded(&mut child, Duration::from_secs(300), args[0])
}

fn log_file(lab: &Lab, name: &str) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(lab.dir.path().join(format!("{name}.log")))
        .unwrap()
}

/// The case's logs, for a failure message.
pub fn logs(lab: &Lab) -> String {
    let mut out = String::new();
    for name in ["run", "cleanup"] {
        let text = std::fs::read_to_string(lab.dir.path().join(format!("{name}.log")));
        out.push_str(&format!("--- {name}.log\n{}\n", text.unwrap_or_default()));
    }
    out
}

fn wait_for_point(child: &mut Child, marker: &Path, point: &str, lab: &Lab) {
    let deadline = Instant::now() + Duration::from_secs(300);
    while !marker.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "rollci ended ({status}) before reaching `{point}`\n{}",
                logs(lab)
            );
        }
        assert!(Instant::now() < deadline, "`{point}` not reached in 300 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for `child`; past `limit` it is a hang: killed, and the test fails.
fn wait_bounded(child: &mut Child, limit: Duration, what: &str) -> Option<i32> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} hung past {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// After a fault: cleanup twice (the second a no-op), the journal and `status` checked, the
/// provider asked by `leaks` (given the journal as it was before cleanup). `failed` is
/// whether the run should have failed (then `status` must say so and the flow be incomplete).
pub fn settle(
    lab: &Lab,
    env: &[(&str, String)],
    failed: bool,
    leaks: impl Fn(&Value) -> Vec<String>,
) -> (Vec<String>, Vec<String>) {
    let mut journal_errors = Vec::new();
    let before = match read_state(lab) {
        Ok(state) => state,
        Err(e) => {
            journal_errors.push(e);
            Value::Null
        }
    };
    if failed {
        journal_errors.extend(status_says_stopped(lab, env));
    }
    let first = run_to_end(lab, env, &["cleanup"]);
    if !matches!(first, Some(0 | 1)) {
        journal_errors.push(format!("cleanup exited {first:?}"));
    }
    let after_first = read_state(lab).unwrap_or(Value::Null);
    let second = run_to_end(lab, env, &["cleanup"]);
    if !matches!(second, Some(0 | 1)) {
        journal_errors.push(format!("second cleanup exited {second:?}"));
    }
    let after_second = read_state(lab).unwrap_or(Value::Null);
    if after_first["resources"] != after_second["resources"] {
        journal_errors.push("the second cleanup changed the resources".into());
    }
    for r in after_second["resources"].as_array().into_iter().flatten() {
        if r["status"] != "destroyed" {
            journal_errors.push(format!(
                "{} {} left `{}`",
                r["kind"], r["name"], r["status"]
            ));
        }
    }
    let state = if before.is_null() {
        after_second
    } else {
        before
    };
    let mut leaks = leaks(&state);
    leaks.extend(secrets_written(lab.dir.path()));
    (leaks, journal_errors)
}

/// Every file under `dir` (the workspace, the logs of rollci's output) holding a secret.
fn secrets_written(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).into_iter().flatten().flatten() {
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                folders.push(path);
                continue;
            }
            let bytes = std::fs::read(&path).unwrap_or_default();
            for (name, value) in SECRETS {
                if bytes.windows(value.len()).any(|w| w == value.as_bytes()) {
                    found.push(format!("{name}'s value is in {}", path.display()));
                }
            }
        }
    }
    found
}

fn read_state(lab: &Lab) -> Result<Value, String> {
    let text = std::fs::read_to_string(lab.workspace().join("state.json"))
        .map_err(|e| format!("state.json unreadable: {e}"))?;
    serde_json::from_str(&text).map_err(|e| format!("state.json does not parse: {e}"))
}

/// `status --json` must work, show a step that did not pass, and the flow incomplete.
fn status_says_stopped(lab: &Lab, env: &[(&str, String)]) -> Vec<String> {
    let mut cmd = lab.cmd(&["status", "--json"]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let Ok(status) = serde_json::from_slice::<Value>(&out.stdout) else {
        return vec![format!(
            "status failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )];
    };
    let mut errors = Vec::new();
    let steps = status["summary"]["steps"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if !steps.iter().any(|s| s["outcome"] != "passed") {
        errors.push(format!("status names no step that failed: {steps:?}"));
    }
    if status["summary"]["flow_complete"] != false {
        errors.push("status does not call the flow incomplete".into());
    }
    errors
}

/// Processes that carry the run's marker in their environment (every child rollci starts).
pub fn processes_of_run(run_id: &str) -> Vec<String> {
    let marker = format!("ROLLCI_RUN_ID={run_id}");
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
        if environ.split(|b| *b == 0).any(|v| v == marker.as_bytes()) {
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            found.push(format!("process {:?}: {cmdline}", entry.file_name()));
        }
    }
    found
}

/// Every host port of the journal that still accepts a connection.
pub fn open_ports(state: &Value) -> Vec<String> {
    let mut open = Vec::new();
    for host in state["hosts"].as_array().into_iter().flatten() {
        let address = host["address"].as_str().unwrap_or_default();
        let mut ports = vec![host["port"].as_u64().unwrap_or_default()];
        ports.extend(
            host["ports"]
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(_, p)| p.as_u64()),
        );
        for port in ports.into_iter().filter(|p| *p != 0) {
            let Ok(addr) = format!("{address}:{port}").parse() else {
                continue;
            };
            if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_ok() {
                open.push(format!("{addr} listens"));
            }
        }
    }
    open
}

/// Prints a provider's table, keeps it in `target/faults/NAME.txt`, and fails the test when
/// any case leaked or left the journal wrong.
pub fn report(name: &str, rows: &[Row]) {
    let mut text = format!(
        "fault matrix: {name}\n{:<58} {:>5} {:>6} {:>8} {:>7}\n",
        "case", "exit", "leaks", "journal", "seconds"
    );
    for r in rows {
        let exit = r
            .exit
            .map(|c| c.to_string())
            .unwrap_or_else(|| "kill".into());
        text.push_str(&format!(
            "{:<58} {:>5} {:>6} {:>8} {:>7.1}\n",
            r.case,
            exit,
            r.leaks.len(),
            r.journal_errors.len(),
            r.secs
        ));
    }
    let leaks: usize = rows.iter().map(|r| r.leaks.len()).sum();
    let errors: usize = rows.iter().map(|r| r.journal_errors.len()).sum();
    let secs: f64 = rows.iter().map(|r| r.secs).sum();
    text.push_str(&format!(
        "{:<58} {:>5} {:>6} {:>8} {:>7.1}\n",
        format!("{} cases", rows.len()),
        "",
        leaks,
        errors,
        secs
    ));
    eprintln!("{text}");
    let dir = PathBuf::from(ROOT).join("target/faults");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::File::create(dir.join(format!("{name}.txt")))
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .unwrap();
    let details: Vec<String> = rows
        .iter()
        .flat_map(|r| {
            r.leaks
                .iter()
                .chain(&r.journal_errors)
                .map(move |e| format!("{}: {e}", r.case))
        })
        .collect();
    assert!(
        details.is_empty(),
        "fault matrix `{name}`:\n{}",
        details.join("\n")
    );
}
