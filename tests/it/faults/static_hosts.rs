//! The `static` provider's row of the matrix, on a real sshd (`ssh_hosts::Sshd`, a loopback
//! address of its own): signals at the moments the run's ssh master is journaled, made and
//! stopped, and the remote side failing: sshd and its sessions killed while a playbook runs
//! over it. The leak check: no process of the run, no master answering `ssh -O check`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Ran, Row, Stop, processes_of_run, report, row, run_stopped_at};
use crate::lab::Lab;
use crate::ssh_hosts::Sshd;

/// A one-host static lab; its deploy writes `started` on the host, then runs `seconds` long.
/// Teardown fetches `started` back as a log (`[logs]`), so every case also stops rollci or
/// loses the host around that fetch.
fn lab(sshd: &Sshd, started: &Path, seconds: u32) -> Lab {
    let playbook = sshd.dir.join("deploy.yml");
    std::fs::write(
        &playbook,
        format!(
            "- hosts: nodes\n  gather_facts: false\n  tasks:\n    - ansible.builtin.copy:\n        \
             dest: \"{}\"\n        content: \"started\"\n    - ansible.builtin.command: sleep {seconds}\n",
            started.display()
        ),
    )
    .unwrap();
    let action = |name: &str| {
        format!(
            "{{ name = \"{name}\", playbook = \"{}\", timeout = \"3m\" }}",
            playbook.display()
        )
    };
    Lab::with_text(&format!(
        "[lab]\nname = \"faults-static\"\nfrom_release = \"A\"\nto_release = \"B\"\n\n\
         [provider]\nkind = \"static\"\nwait = \"20s\"\n\n\
         [[provider.hosts]]\nname = \"h1\"\naddress = \"{}\"\nport = {}\nuser = \"root\"\n\
         key = \"{}\"\ngroups = [\"nodes\"]\n\n\
         [deploy]\nactions = [{}]\n\n[upgrade]\nmode = \"all-at-once\"\naction = {}\n\n\
         [logs]\nfolders = [\"{}\"]\npatterns = [\"started\"]\ntimeout = \"1m\"\n",
        sshd.address,
        sshd.port,
        sshd.dir.join("user_key").display(),
        action("deploy"),
        action("upgrade"),
        started.parent().unwrap().display()
    ))
}

fn master_up(lab: &Lab) -> bool {
    Command::new("ssh")
        .arg("-F")
        .arg(lab.workspace().join("ssh/config"))
        .args(["-O", "check", "h1"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn leaks(lab: &Lab, state: &Value) -> Vec<String> {
    let mut found = processes_of_run(state["run_id"].as_str().unwrap_or("?"));
    if lab.workspace().join("ssh/config").exists() && master_up(lab) {
        found.push("the run's ssh master to h1 still answers".into());
    }
    found
}

fn case(name: String, lab: &Lab, exit: Option<i32>, want: Option<i32>, t: Instant) -> Row {
    // A SIGTERM in `run`'s own cleanup (its log fetch, its destroying) cannot stop it: every
    // step passed (exit 5 still).
    let failed = !(name.contains("Term at destroying") || name.contains("Term at attempt:[logs]"));
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
fn signals_and_sshd_killed_mid_playbook() {
    let mut rows = Vec::new();
    let points = [
        "creating:static:ssh-master",
        "created:static:ssh-master",
        "attempt:deploy",
        "attempt:[logs]",
        "destroying:static:ssh-master",
    ];
    for (stop, want) in [(Stop::Kill9, None), (Stop::Term, Some(5))] {
        for point in points {
            let t = Instant::now();
            let tmp = tempfile::tempdir().unwrap();
            let sshd = Sshd::start(tmp.path());
            let lab = lab(&sshd, &tmp.path().join("started"), 0);
            let exit = run_stopped_at(&lab, &[], point, stop);
            rows.push(case(
                format!("static: {stop:?} at {point}"),
                &lab,
                exit,
                want,
                t,
            ));
        }
    }
    rows.push(sshd_killed_mid_playbook());
    report("static", &rows);
}

fn sshd_killed_mid_playbook() -> Row {
    let t = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let mut sshd = Sshd::start(tmp.path());
    let started = tmp.path().join("started");
    let lab = lab(&sshd, &started, 120);
    let mut child = lab
        .std_cmd(&["run"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !started.exists() {
        assert!(
            Instant::now() < deadline,
            "the playbook never started on h1"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    sshd.kill_with_sessions();
    let exit = child.wait().unwrap().code();
    case(
        "static: sshd killed mid-playbook".into(),
        &lab,
        exit,
        Some(3),
        t,
    )
}
