//! The `local` provider's row of the matrix: a one-node lab whose actions are
//! `tests/faults/act.py` (a daemonized server on node1, journaled by its pidfile), so a case
//! costs a second or two and every step and action can be broken.

use std::time::Instant;

use serde_json::Value;

use super::{
    Ran, Row, Stop, open_ports, processes_of_run, report, row, run_stopped_at, run_to_end,
};
use crate::lab::{Lab, ROOT, unique_block};

/// The actions of the lab, by step: (step, action name, act.py argument).
const ACTIONS: [(&str, &str, &str); 4] = [
    ("provision", "prepare", "ok"),
    ("deploy", "deploy", "start"),
    ("verify", "verify", "ok"),
    ("upgrade", "upgrade", "restart"),
];

/// The lab, with `fail` (`never`, `first`, `always`) applied to the action named `broken`.
fn lab(broken: &str, fail: &str) -> Lab {
    Lab::with_text(&lab_text(broken, fail, &[]))
}

/// The lab with more deploy actions after `deploy` (name, argv), none broken.
pub fn lab_with(extra: &[(&str, Vec<String>)]) -> Lab {
    Lab::with_text(&lab_text("", "never", extra))
}

fn lab_text(broken: &str, fail: &str, extra: &[(&str, Vec<String>)]) -> String {
    let [a, b, c, d] = unique_block();
    let act = |name: &str, what: &str| {
        let mode = if name == broken { fail } else { "never" };
        let argv = [
            "python3",
            &format!("{ROOT}/tests/faults/act.py"),
            what,
            "--fail",
            mode,
        ];
        action(name, &argv.map(String::from))
    };
    let [(_, p, pa), (_, dn, da), (_, vn, va), (_, un, ua)] = ACTIONS;
    let mut deploy = vec![act(dn, da)];
    deploy.extend(extra.iter().map(|(name, argv)| action(name, argv)));
    format!(
        "[lab]\nname = \"faults-local\"\nfrom_release = \"A\"\nto_release = \"B\"\n\n\
         [provider]\nkind = \"local\"\nnodes = 1\nbase_address = \"{a}.{b}.{c}.{d}\"\n\n\
         [provision]\nhost = [{}]\n\n[deploy]\nactions = [{}]\n\n[verify]\nactions = [{}]\n\n\
         [upgrade]\nmode = \"all-at-once\"\naction = {}\n\n\
         [probing]\nbaseline = \"100ms\"\n\n\
         [[probes]]\nname = \"node\"\nkind = \"tcp\"\nurl = \"tcp://{{host}}\"\nhosts = [\"node1\"]\n\
         interval = \"100ms\"\ntimeout = \"2s\"\nmax_downtime = \"10m\"\n",
        act(p, pa),
        deploy.join(", "),
        act(vn, va),
        act(un, ua),
    )
}

/// One action as inline TOML: argv quoted as TOML strings (JSON's escapes are TOML's).
fn action(name: &str, argv: &[String]) -> String {
    let argv = serde_json::to_string(argv).unwrap();
    format!(
        "{{ name = \"{name}\", command = {argv}, retries = 1, retry_delay = \"0s\", timeout = \"2m\" }}"
    )
}

/// What the local provider can still see of a run: its processes, its ports, its folder.
pub fn leaks(lab: &Lab, state: &Value) -> Vec<String> {
    let mut found = processes_of_run(state["run_id"].as_str().unwrap_or("?"));
    found.extend(open_ports(state));
    if lab.workspace().join("lab").exists() {
        found.push("the lab folder is still there".into());
    }
    found
}

fn case(
    name: String,
    lab: &Lab,
    exit: Option<i32>,
    want: Option<i32>,
    failed: bool,
    t: Instant,
) -> Row {
    let ran = Ran {
        lab,
        env: &[],
        exit,
        want,
        failed,
        started: t,
    };
    row(name, ran, |s| leaks(lab, s))
}

#[test]
fn failing_actions_once_and_always() {
    let mut rows = Vec::new();
    for (_, action, _) in ACTIONS {
        // A verify action that fails is the system under test failing a check (exit 1);
        // any other is the infrastructure's (exit 3).
        let broken = if action == "verify" { 1 } else { 3 };
        for (fail, code) in [("first", 0), ("always", broken)] {
            let started = Instant::now();
            let lab = lab(action, fail);
            let exit = run_to_end(&lab, &[], &["run"]);
            let name = format!("local: `{action}` fails {fail}");
            rows.push(case(name, &lab, exit, Some(code), code != 0, started));
        }
    }
    report("local-failing-actions", &rows);
}

/// The moments a signal lands: a step's start, a resource journaled but not made, made but
/// its creator not yet back, an attempt journaled before its tool starts, mid-cleanup.
const POINTS: [&str; 10] = [
    "step:provision",
    "creating:local:dir:lab",
    "created:local:dir:nodes/node1",
    "attempt:prepare",
    "attempt:deploy",
    "creating:local:process",
    "step:verify",
    "attempt:upgrade",
    "step:report",
    "destroying:local:process",
];

fn stopped(stop: Stop, table: &str) {
    let mut rows = Vec::new();
    for point in POINTS {
        let started = Instant::now();
        let lab = lab("", "never");
        let exit = run_stopped_at(&lab, &[], point, stop);
        let name = format!("local: {stop:?} at {point}");
        // A SIGTERM in `run`'s report or cleanup cannot stop them (they finish what they
        // started): every step may have passed, but the run still ends as aborted.
        let late = point.starts_with("destroying") || point == "step:report";
        let finished = matches!(stop, Stop::Term) && late;
        let expected = match stop {
            Stop::Kill9 => None,
            Stop::Term => Some(5),
        };
        rows.push(case(name, &lab, exit, expected, !finished, started));
    }
    report(table, &rows);
}

#[test]
fn kill_9_at_every_moment() {
    stopped(Stop::Kill9, "local-kill-9");
}

#[test]
fn sigterm_at_every_moment() {
    stopped(Stop::Term, "local-sigterm");
}
