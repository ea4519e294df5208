//! Runs external tools: argv only, output streamed line by line with a timestamp and a label
//! to the console and a per-attempt log file, a timeout that kills the whole process group.

use std::ffi::OsString;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::workspace::journal::ProcessId;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// Runs invocations: the system's processes, or a fake in unit tests of the steps.
pub trait Executor {
    /// Runs `inv` to its end; `started` hears of its process group as soon as it exists.
    fn run(&self, inv: &Invocation, started: &mut dyn FnMut(ProcessId)) -> anyhow::Result<Ended>;
}

/// Real processes, through [`run`].
pub struct System;

impl Executor for System {
    fn run(&self, inv: &Invocation, started: &mut dyn FnMut(ProcessId)) -> anyhow::Result<Ended> {
        run_reporting(inv, started)
    }
}

/// Grace period between SIGTERM and SIGKILL when a timeout runs out.
const KILL_GRACE: Duration = Duration::from_secs(5);

/// One process to run.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
    pub timeout: Duration,
    /// Prefix of every output line, e.g. `deploy/deploy-lab#1`.
    pub label: String,
    pub log: PathBuf,
    /// Raw stdout goes to this file instead of the log (a subunit stream, say).
    pub stdout: Option<PathBuf>,
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    Exited(i32),
    Signaled(i32),
    TimedOut,
    /// rollci received this stop signal and passed it on to the tool's group.
    Aborted(i32),
}

impl Ended {
    pub fn success(self) -> bool {
        self == Ended::Exited(0)
    }
    /// The code recorded in the journal: the exit code, 128+signal, or 124 for a timeout.
    pub fn code(self) -> i32 {
        match self {
            Ended::Exited(c) => c,
            Ended::Signaled(s) => 128 + s,
            Ended::TimedOut => 124,
            Ended::Aborted(s) => 128 + s,
        }
    }
    pub fn describe(self, timeout: Duration) -> String {
        match self {
            Ended::Exited(c) => format!("exit status {c}"),
            Ended::Signaled(s) => format!("killed by signal {s}"),
            Ended::TimedOut => format!("timed out after {}", humantime::format_duration(timeout)),
            Ended::Aborted(s) => format!("aborted (signal {s} passed on to it)"),
        }
    }
}

/// Runs the invocation to its end (or its timeout) and returns how it ended.
pub fn run(inv: &Invocation) -> anyhow::Result<Ended> {
    run_reporting(inv, &mut |_| {})
}

/// [`run`], telling `started` the process group as soon as the tool runs.
pub fn run_reporting(
    inv: &Invocation,
    started: &mut dyn FnMut(ProcessId),
) -> anyhow::Result<Ended> {
    if let Some(dir) = inv.log.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("failed to create log folder `{}`", dir.display()))?;
    }
    let log = File::create(&inv.log)
        .with_context(|| format!("failed to create log `{}`", inv.log.display()))?;
    let sink = Arc::new(Sink {
        file: Mutex::new(log),
        secrets: secrets(inv),
    });
    emit(&sink, &inv.label, &format!("$ {}", shown_command(inv)));
    let mut child = spawn(inv)?;
    if let Some(start_time) = crate::procs::start_time(child.id()) {
        started(ProcessId {
            pid: child.id(),
            start_time,
        });
    }
    let readers = [
        child.stdout.take().map(|s| pump(s, &sink, &inv.label)),
        child.stderr.take().map(|s| pump(s, &sink, &inv.label)),
    ];
    let ended = wait(&mut child, inv.timeout)?;
    // Whatever the tool left behind in its group goes with it (daemons leave the group
    // on purpose with setsid and are the provider's to track).
    let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
    for reader in readers.into_iter().flatten() {
        join_briefly(reader);
    }
    emit(
        &sink,
        &inv.label,
        &format!("=> {}", ended.describe(inv.timeout)),
    );
    Ok(ended)
}

fn spawn(inv: &Invocation) -> anyhow::Result<Child> {
    let stdout = match &inv.stdout {
        Some(path) => Stdio::from(
            File::create(path).with_context(|| format!("failed to create `{}`", path.display()))?,
        ),
        None => Stdio::piped(),
    };
    Command::new(&inv.program)
        .args(&inv.args)
        .envs(inv.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&inv.cwd)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .with_context(|| format!("failed to start `{}`", inv.program.display()))
}

fn wait(child: &mut Child, timeout: Duration) -> anyhow::Result<Ended> {
    let deadline = Instant::now() + timeout;
    // Short tools end in a millisecond or two: poll often at first, then back off to 20 ms
    // (a fixed 20 ms poll was most of a one-command step's overhead in `bench/overhead.py`).
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(status) = child.try_wait().context("failed to wait for child")? {
            return Ok(match (status.code(), status.signal()) {
                (Some(code), _) => Ended::Exited(code),
                (None, Some(sig)) => Ended::Signaled(sig),
                (None, None) => Ended::Exited(-1),
            });
        }
        if Instant::now() >= deadline {
            terminate(child, Signal::SIGTERM)?;
            return Ok(Ended::TimedOut);
        }
        if crate::signals::pending() {
            let signal = crate::signals::last().unwrap_or(Signal::SIGTERM as i32);
            let forwarded = Signal::try_from(signal).unwrap_or(Signal::SIGTERM);
            terminate(child, forwarded)?;
            return Ok(Ended::Aborted(signal));
        }
        std::thread::sleep(pause.min(deadline.saturating_duration_since(Instant::now())));
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// SIGTERM to the group, a grace period, then SIGKILL.
/// Sends `signal` to the tool's whole group, gives it [`KILL_GRACE`] to end (cut short by
/// one more stop signal to rollci), then SIGKILL.
fn terminate(child: &mut Child, signal: Signal) -> anyhow::Result<()> {
    let group = Pid::from_raw(child.id() as i32);
    let signals_before = crate::signals::count();
    let _ = killpg(group, signal);
    let deadline = Instant::now() + KILL_GRACE;
    while Instant::now() < deadline {
        if child.try_wait()?.is_some() {
            break;
        }
        if crate::signals::count() > signals_before {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = killpg(group, Signal::SIGKILL);
    child.wait().context("failed to reap killed child")?;
    Ok(())
}

fn pump<R: Read + Send + 'static>(stream: R, sink: &Arc<Sink>, label: &str) -> JoinHandle<()> {
    let sink = Arc::clone(sink);
    let label = label.to_string();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut buf = Vec::new();
        while matches!(reader.read_until(b'\n', &mut buf), Ok(n) if n > 0) {
            let line = String::from_utf8_lossy(&buf);
            emit(&sink, &label, line.trim_end_matches(['\n', '\r']));
            buf.clear();
        }
    })
}

/// A grandchild that kept our pipe open must not hang the step: give readers a moment.
fn join_briefly(handle: JoinHandle<()>) {
    let deadline = Instant::now() + Duration::from_secs(2);
    while !handle.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    if handle.is_finished() {
        let _ = handle.join();
    }
}

/// Where a process's output goes, and what must never appear in it.
struct Sink {
    file: Mutex<File>,
    secrets: Vec<String>,
}

/// Names of environment variables whose values are secrets.
const SECRET_NAMES: [&str; 6] = [
    "PASSWORD",
    "TOKEN",
    "SECRET",
    "API_KEY",
    "APIKEY",
    "CREDENTIAL",
];

/// Values of the secret-looking variables the process sees (ours and the invocation's).
fn secrets(inv: &Invocation) -> Vec<String> {
    let is_secret = |k: &str| SECRET_NAMES.iter().any(|s| k.to_uppercase().contains(s));
    std::env::vars()
        .chain(inv.env.iter().cloned())
        .filter(|(k, v)| is_secret(k) && v.len() >= 4)
        .map(|(_, v)| v)
        .collect()
}

/// Writes one timestamped line, secrets masked, to the log and the console.
fn emit(sink: &Sink, label: &str, line: &str) {
    let stamp = chrono::Utc::now().format("%H:%M:%S%.3f");
    let mut text = format!("{stamp} [{label}] {line}\n");
    for secret in &sink.secrets {
        text = text.replace(secret.as_str(), "****");
    }
    if let Ok(mut file) = sink.file.lock() {
        let _ = file.write_all(text.as_bytes());
        // The console gets the same line; a closed stdout must not stop the step.
        crate::console::out_bytes(text.as_bytes());
    }
}

/// The command line as a person would retype it (each argument quoted when needed).
pub fn shown_command(inv: &Invocation) -> String {
    std::iter::once(inv.program.as_os_str())
        .chain(inv.args.iter().map(|a| a.as_os_str()))
        .map(|a| quote(&a.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ")
}

fn quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:@,+".contains(c));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', "'\\''"))
    }
}

/// Where the log of one attempt goes: its label made a file name, in the run's log folder.
pub fn log_path(log_dir: &Path, label: &str) -> PathBuf {
    log_dir.join(format!("{}.log", label.replace(['/', '#', ':'], "-")))
}

/// The log of an attempt of the `sequence`-th step record of a run: the sequence keeps a
/// re-run's logs apart from the earlier runs' (`03-upgrade-node1-1.log`).
pub fn attempt_log(log_dir: &Path, sequence: usize, label: &str) -> PathBuf {
    log_path(log_dir, &format!("{sequence:02}-{label}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inv(dir: &Path, args: &[&str], timeout: Duration) -> Invocation {
        Invocation {
            program: PathBuf::from("/bin/sh"),
            args: args.iter().map(OsString::from).collect(),
            env: vec![("GREETING".into(), "hi $(x)".into())],
            cwd: dir.to_path_buf(),
            timeout,
            label: "test/a#1".into(),
            log: dir.join("logs/a.log"),
            stdout: None,
        }
    }

    #[test]
    fn output_is_logged_with_label_and_code_kept() {
        let dir = tempfile::tempdir().unwrap();
        let i = inv(
            dir.path(),
            &["-c", "echo \"$GREETING\"; echo err >&2; exit 7"],
            Duration::from_secs(10),
        );
        assert_eq!(run(&i).unwrap(), Ended::Exited(7));
        let log = std::fs::read_to_string(dir.path().join("logs/a.log")).unwrap();
        assert!(log.contains("[test/a#1] hi $(x)"), "{log}");
        assert!(log.contains("[test/a#1] err"), "{log}");
        assert!(log.contains("=> exit status 7"), "{log}");
    }

    #[test]
    fn timeout_kills_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("grandchild.pid");
        let script = format!("sleep 30 & echo $! > {}; wait", pidfile.display());
        let i = inv(dir.path(), &["-c", &script], Duration::from_millis(300));
        assert_eq!(run(&i).unwrap(), Ended::TimedOut);
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let alive = Path::new(&format!("/proc/{pid}")).exists()
            && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .unwrap_or_default()
                .contains(") Z");
        assert!(!alive, "grandchild {pid} survived the timeout");
    }

    #[test]
    fn secrets_in_the_environment_are_masked_in_logs() {
        let dir = tempfile::tempdir().unwrap();
        let mut i = inv(
            dir.path(),
            &["-c", "echo \"pw=$OS_PASSWORD\"; echo \"$GREETING\""],
            Duration::from_secs(10),
        );
        i.env.push(("OS_PASSWORD".into(), "s3cr3t-Pa55".into()));
        assert_eq!(run(&i).unwrap(), Ended::Exited(0));
        let log = std::fs::read_to_string(dir.path().join("logs/a.log")).unwrap();
        assert!(log.contains("pw=****"), "{log}");
        assert!(!log.contains("s3cr3t"), "{log}");
        assert!(log.contains("hi $(x)"), "non-secrets stay: {log}");
    }

    #[test]
    fn quoting_shows_metacharacters_literally() {
        assert_eq!(quote("a b;$(id)"), "'a b;$(id)'");
        assert_eq!(quote("it's"), "'it'\\''s'");
        assert_eq!(quote("-e"), "-e");
    }
}
