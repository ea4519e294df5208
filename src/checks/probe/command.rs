//! `kind = "command"` probes: a real client (openstacksdk, a CLI) kept running beside the
//! upgrade, asked for one round of its calls per probe.
//!
//! The protocol, one JSON line each way: rollci writes `{"n": 7}`; the client answers
//! `{"n": 7, "ok": true}` or `{"n": 7, "ok": false, "class": "closed", "status": null,
//! "error": "..."}` once the round is done, and first `{"ready": true}` once it has started
//! (imports done), so its start-up is not taken for downtime. It must exit when its stdin
//! ends: that is how a rollci killed with SIGKILL still leaves no client behind. Rounds are
//! sequential, as in a user's script: a slow round delays the next tick, which is then
//! skipped, not queued.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

use super::request::Outcome;

/// How long a client may take to say it is ready (a Python client's imports on a loaded
/// 2-core machine take seconds).
const READY: Duration = Duration::from_secs(120);

/// The argv of a client and where it runs.
#[derive(Debug, Clone)]
pub struct ClientCommand {
    pub argv: Vec<String>,
    pub cwd: PathBuf,
}

/// A running client.
pub struct Worker {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    next: u64,
}

#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    n: Option<u64>,
    #[serde(default)]
    ready: bool,
    #[serde(default)]
    ok: bool,
    class: Option<String>,
    status: Option<u16>,
    error: Option<String>,
}

impl Worker {
    /// Starts the client (stderr to `log`) and waits for its `ready` line.
    pub async fn start(command: &ClientCommand, log: &Path) -> anyhow::Result<Worker> {
        let stderr = std::fs::File::create(log)
            .with_context(|| format!("failed to create `{}`", log.display()))?;
        let (program, args) = command.argv.split_first().context("empty probe command")?;
        let mut child = tokio::process::Command::new(program)
            .args(args)
            .current_dir(&command.cwd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("failed to start the probe command `{program}`"))?;
        let stdin = child.stdin.take().context("no stdin")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut worker = Worker {
            child,
            stdin,
            lines: BufReader::new(stdout).lines(),
            next: 0,
        };
        let ready = tokio::time::timeout(READY, worker.until(|a| a.ready)).await;
        match ready {
            Ok(Ok(_)) => Ok(worker),
            Ok(Err(e)) => {
                // A client that died at start-up says why on stderr: the reader of a CI log
                // gets its last lines here, not only the file's name.
                let _ = tokio::time::timeout(Duration::from_secs(2), worker.child.wait()).await;
                let said = tail(log, 6);
                Err(e.context(format!(
                    "the probe command `{program}` ({}) did not start; its stderr `{}` ends:\n{said}",
                    worker.exit_text(),
                    log.display()
                )))
            }
            Err(_) => anyhow::bail!(
                "the probe command `{program}` did not say it was ready within {READY:?} (see `{}`)",
                log.display()
            ),
        }
    }

    /// One round: `timeout` from the request to its answer.
    pub async fn probe(&mut self, timeout: Duration) -> Outcome {
        self.next += 1;
        let n = self.next;
        let started = Instant::now();
        let asked = async {
            let line = format!("{{\"n\": {n}}}\n");
            self.stdin.write_all(line.as_bytes()).await?;
            self.stdin.flush().await?;
            // Answers of rounds that timed out earlier come first: skipped.
            self.until(|a| a.n == Some(n)).await
        };
        let answer = tokio::time::timeout(timeout, asked).await;
        let (class, status, error) = match answer {
            Ok(Ok(a)) if a.ok => ("ok", None, None),
            Ok(Ok(a)) => (class_of(a.class.as_deref()), a.status, a.error),
            Ok(Err(e)) => ("other", None, Some(format!("the probe command: {e:#}"))),
            Err(_) => (
                "timeout",
                None,
                Some(format!("no answer within {timeout:?}")),
            ),
        };
        Outcome {
            class,
            status,
            error,
            latency: started.elapsed(),
            connection: None,
        }
    }

    async fn until(&mut self, wanted: impl Fn(&Answer) -> bool) -> anyhow::Result<Answer> {
        loop {
            let line = self.lines.next_line().await?;
            let Some(line) = line else {
                anyhow::bail!("it exited ({})", self.exit_text());
            };
            let Ok(answer) = serde_json::from_str::<Answer>(&line) else {
                continue;
            };
            if wanted(&answer) {
                return Ok(answer);
            }
        }
    }

    fn exit_text(&mut self) -> String {
        match self.child.try_wait() {
            Ok(Some(status)) => status.to_string(),
            _ => "its stdout closed".into(),
        }
    }

    /// Ends the client: its stdin closed (it exits by itself), then SIGTERM and SIGKILL to
    /// its process group if it does not.
    pub async fn stop(mut self) {
        drop(self.stdin);
        let exited = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
        if exited.is_ok() {
            return;
        }
        if let Some(pid) = self.child.id() {
            let group = nix::unistd::Pid::from_raw(-(pid as i32));
            let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGTERM);
            if tokio::time::timeout(Duration::from_secs(3), self.child.wait())
                .await
                .is_ok()
            {
                return;
            }
            let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGKILL);
        }
        let _ = self.child.wait().await;
    }
}

/// A client's class, kept to the names rollci's own probes use.
/// The last `lines` lines of a log, at most 2 KiB of them.
fn tail(log: &Path, lines: usize) -> String {
    let text = std::fs::read(log).unwrap_or_default();
    let text = String::from_utf8_lossy(&text[text.len().saturating_sub(2048)..]);
    let all: Vec<&str> = text.trim_end().lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn class_of(class: Option<&str>) -> &'static str {
    match class {
        Some("status") => "status",
        Some("timeout") => "timeout",
        Some("refused") => "refused",
        Some("reset") => "reset",
        Some("closed") => "closed",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client speaking the protocol: ready, then ok, a `closed` failure, a round too slow
    /// for the timeout, and ok again (the late answer of the slow round is skipped).
    const CLIENT: &str = r#"
import json, sys, time
print('{"ready": true}', flush=True)
for i, line in enumerate(sys.stdin):
    n = json.loads(line)["n"]
    if i == 2:
        time.sleep(0.6)
    out = {"n": n, "ok": i != 1}
    if i == 1:
        out.update({"class": "closed", "error": "GET /v2/images: RemoteDisconnected"})
    print(json.dumps(out), flush=True)
"#;

    #[tokio::test]
    async fn rounds_are_answered_by_number_and_a_slow_one_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let command = ClientCommand {
            argv: vec!["python3".into(), "-c".into(), CLIENT.into()],
            cwd: dir.path().to_path_buf(),
        };
        let mut worker = Worker::start(&command, &dir.path().join("c.log"))
            .await
            .unwrap();
        let t = Duration::from_millis(300);
        assert_eq!(worker.probe(t).await.class, "ok");
        let closed = worker.probe(t).await;
        assert_eq!(closed.class, "closed");
        assert!(closed.error.unwrap().contains("RemoteDisconnected"));
        assert_eq!(worker.probe(t).await.class, "timeout");
        let after = worker.probe(Duration::from_secs(2)).await;
        assert_eq!(after.class, "ok", "{after:?}");
        worker.stop().await;
    }

    #[tokio::test]
    async fn a_client_that_exits_before_ready_is_an_error_naming_its_log() {
        let dir = tempfile::tempdir().unwrap();
        let command = ClientCommand {
            argv: vec![
                "python3".into(),
                "-c".into(),
                "import sys; sys.stderr.write('no such cloud: lab\\n'); sys.exit(3)".into(),
            ],
            cwd: dir.path().to_path_buf(),
        };
        let log = dir.path().join("c.log");
        let err = Worker::start(&command, &log).await.err().unwrap();
        let text = format!("{err:#}");
        assert!(text.contains("exited") && text.contains("c.log"), "{text}");
        assert!(
            text.contains("exit status: 3"),
            "the exit status is told: {text}"
        );
        assert!(
            text.contains("no such cloud: lab"),
            "its stderr is told: {text}"
        );
    }
}
