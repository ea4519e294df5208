//! The ordinary ways a CI job ends early: SIGTERM (Jenkins' Abort) and SIGINT (Ctrl-C)
//! during the upgrade, a second signal, a reader that closes rollci's stdout, and a
//! `kill -9` that leaves a tool running. Whatever happens, the journal says what happened
//! and nothing of the lab stays alive.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

use crate::lab::{Lab, demo_text, unique_block};

/// The demo lab with its upgrade replaced by one component running `command` (a JSON argv).
fn lab_upgrading_with(command: &str) -> Lab {
    let text = demo_text(unique_block());
    let start = text.find("[upgrade]\n").unwrap();
    let end = text.find("# Availability probes").unwrap();
    let upgrade = format!(
        "[upgrade]\nmode = \"rolling\"\n\n[[upgrade.components]]\nname = \"hang\"\ncommand = {command}\ntimeout = \"5m\"\n\n"
    );
    Lab::with_text(&format!("{}{upgrade}{}", &text[..start], &text[end..]))
}

/// A tool that says `ready` and then ignores SIGINT and SIGTERM for five minutes.
const STUBBORN: &str = r#"["python3", "-c", "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('ready', flush=True)\ntime.sleep(300)"]"#;
/// A tool that says `ready` (so its group is journaled by then) and sleeps.
const SLEEPER: &str =
    r#"["python3", "-c", "import time\nprint('ready', flush=True)\ntime.sleep(300)"]"#;

/// `rollci ARGS` started in the background, its stdout read line by line.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn start(lab: &Lab, args: &[&str]) -> Running {
        let mut child = lab
            .std_cmd(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Running {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits (up to five minutes) for a line containing `needle`.
    fn wait_for(&mut self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(300);
        while Instant::now() < deadline {
            if let Ok(line) = self.lines.recv_timeout(Duration::from_secs(1)) {
                let found = line.contains(needle);
                self.seen.push(line);
                if found {
                    return;
                }
            }
        }
        panic!("no `{needle}` in:\n{}", self.seen.join("\n"));
    }

    fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), signal).unwrap();
    }

    /// Waits for rollci to exit; returns its code and everything it printed.
    fn finish(mut self) -> (Option<i32>, String) {
        let deadline = Instant::now() + Duration::from_secs(120);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "rollci did not exit");
            std::thread::sleep(Duration::from_millis(50));
        };
        self.seen.extend(self.lines.try_iter());
        std::thread::sleep(Duration::from_millis(100));
        self.seen.extend(self.lines.try_iter());
        let text = self.seen.join("\n");
        eprintln!("--- rollci exited {:?}\n{text}", status.code());
        (status.code(), text)
    }
}

fn record<'a>(state: &'a Value, step: &str) -> &'a Value {
    state["steps"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|s| s["step"] == step)
        .unwrap_or_else(|| panic!("no `{step}` record in {state}"))
}

fn attempt_group_alive(state: &Value, step: &str) -> bool {
    let group = &record(state, step)["attempts"][0]["group"];
    let pid = group["pid"]
        .as_u64()
        .expect("the attempt's group is journaled");
    let started = group["start_time"].as_u64().unwrap();
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 1..]
            .split_whitespace()
            .collect();
        fields[0] != "Z" && fields[19].parse::<u64>().ok() == Some(started)
    })
}

#[test]
fn sigterm_during_a_rolling_upgrade_stops_the_playbook_reports_and_cleans_up() {
    let lab = Lab::demo("");
    let mut run = Running::start(&lab, &["run"]);
    run.wait_for("[upgrade/node2#1]");
    run.signal(Signal::SIGTERM);
    let (code, out) = run.finish();
    assert_eq!(code, Some(5), "exit code 5: aborted");
    assert!(
        out.contains("aborted by SIGTERM: writing the report"),
        "{out}"
    );
    assert!(
        out.contains("!!! INCOMPLETE FLOW: upgrade was aborted"),
        "{out}"
    );
    let state = lab.state();
    assert_eq!(record(&state, "upgrade")["outcome"], "aborted");
    assert_eq!(record(&state, "report")["outcome"], "passed");
    assert_eq!(record(&state, "cleanup")["outcome"], "passed");
    let summary = lab.json("reports/summary.json");
    assert!(
        summary["incomplete"]
            .to_string()
            .contains("upgrade was aborted"),
        "{summary}"
    );
    // The playbook upgrading node2 was stopped with rollci, not left to carry on.
    let node2 = &record(&state, "upgrade")["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["action"] == "node2")
        .unwrap()
        .clone();
    assert_eq!(node2["outcome"], "aborted");
    lab.assert_nothing_left();
}

#[test]
fn sigint_then_a_second_signal_skips_the_report_and_still_cleans_up() {
    let lab = lab_upgrading_with(STUBBORN);
    let mut run = Running::start(&lab, &["run"]);
    run.wait_for("[upgrade/hang#1] ready");
    run.signal(Signal::SIGINT);
    // The tool ignores the forwarded SIGINT: rollci waits out its grace unless told again.
    std::thread::sleep(Duration::from_millis(500));
    run.signal(Signal::SIGINT);
    let (code, out) = run.finish();
    assert_eq!(code, Some(5));
    assert!(
        out.contains("second stop signal: skipping the report"),
        "{out}"
    );
    let state = lab.state();
    assert_eq!(record(&state, "upgrade")["outcome"], "aborted");
    assert!(
        state["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["step"] != "report"),
        "the report step was skipped"
    );
    assert_eq!(record(&state, "cleanup")["outcome"], "passed");
    assert!(
        !attempt_group_alive(&state, "upgrade"),
        "the stubborn tool was killed"
    );
    lab.assert_nothing_left();
}

/// `rollci upgrade` on a deployed lab, once its tool runs.
fn upgrading(lab: &Lab) -> Running {
    lab.expect(&["provision"], 0);
    lab.expect(&["deploy"], 0);
    let mut upgrade = Running::start(lab, &["upgrade"]);
    upgrade.wait_for("[upgrade/hang#1] ready");
    upgrade
}

#[test]
fn a_single_step_stopped_by_sigterm_is_journaled_aborted_and_cleanup_still_works() {
    let lab = lab_upgrading_with(SLEEPER);
    let upgrade = upgrading(&lab);
    upgrade.signal(Signal::SIGTERM);
    let (code, _) = upgrade.finish();
    assert_eq!(code, Some(5));
    let state = lab.state();
    assert_eq!(record(&state, "upgrade")["outcome"], "aborted");
    assert_eq!(record(&state, "upgrade")["exit_code"], 5);
    assert!(!attempt_group_alive(&state, "upgrade"));
    lab.expect(&["cleanup"], 0);
    lab.assert_nothing_left();
}

#[test]
fn kill_9_leaves_an_interrupted_record_and_the_next_command_stops_the_orphan() {
    let lab = lab_upgrading_with(SLEEPER);
    let upgrade = upgrading(&lab);
    upgrade.signal(Signal::SIGKILL);
    upgrade.finish();
    let state = lab.state();
    assert!(
        attempt_group_alive(&state, "upgrade"),
        "the tool outlived rollci"
    );
    let status = lab.status();
    let steps = status["summary"]["steps"].as_array().unwrap();
    let upgrade = steps.iter().find(|s| s["step"] == "upgrade").unwrap();
    assert_eq!(upgrade["outcome"], "interrupted", "{status}");
    let out = lab.expect(&["cleanup"], 0);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("left running by a rollci that died"),
        "{stdout}"
    );
    assert!(
        stdout.contains("INCOMPLETE FLOW") && stdout.contains("upgrade was interrupted"),
        "{stdout}"
    );
    let state = lab.state();
    assert!(
        !attempt_group_alive(&state, "upgrade"),
        "the orphan was stopped"
    );
    assert_eq!(record(&state, "upgrade")["outcome"], "interrupted");
    lab.assert_nothing_left();
}

/// rollci with its stdout already closed by its reader.
fn with_closed_stdout(lab: &Lab, args: &[&str]) -> (Option<i32>, String) {
    let mut child = lab
        .std_cmd(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    eprintln!("--- rollci {args:?} -> {:?}\n{stderr}", out.status.code());
    (out.status.code(), stderr)
}

#[test]
fn a_closed_stdout_ends_readers_quietly_and_never_costs_a_run_its_cleanup() {
    let lab = Lab::demo("");
    let (code, stderr) = with_closed_stdout(&lab, &["run"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(lab.json("reports/summary.json")["outcome"], "passed");
    lab.assert_nothing_left();
    let (code, stderr) = with_closed_stdout(&lab, &["status", "--json"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
    let results = "/work/shared/data/tempest-unit.subunit";
    let (code, stderr) = with_closed_stdout(&lab, &["results", results, "--json"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains("Broken pipe"), "{stderr}");
}
