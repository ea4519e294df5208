//! The `libvirt` provider's row of the matrix, with the real libvirtd and one guest: virsh
//! failing on `define` and on `start` (`tests/faults/virsh` first on PATH), and `kill -9` or
//! SIGTERM when a disk or domain is journaled but not made, or made but not yet started. The
//! leak check asks libvirt itself (`virsh list --all`, `net-list`), the process table (QEMU)
//! and the overlay folder. Cases that need a booted guest are left to `tests/it/libvirt.rs`
//! (a boot under TCG costs a minute of both cores).

use std::path::Path;
use std::time::Instant;

use serde_json::Value;

use super::{Ran, Row, Stop, processes_of_run, report, row, run_stopped_at, run_to_end};
use crate::lab::{Lab, ROOT};
use crate::libvirt::{Daemon, LIBVIRT, domains_of, lab, networks_of, overlays, qemus_of};

fn leaks(lab: &Lab, state: &Value) -> Vec<String> {
    let run = state["run_id"].as_str().unwrap_or("?");
    let mut found = processes_of_run(run);
    found.extend(domains_of(run).into_iter().map(|d| format!("domain {d}")));
    found.extend(networks_of(run).into_iter().map(|n| format!("network {n}")));
    found.extend(qemus_of(run).into_iter().map(|p| format!("qemu pid {p}")));
    found.extend(
        overlays(lab)
            .into_iter()
            .map(|o| format!("overlay {}", o.display())),
    );
    found
}

fn case(
    name: String,
    lab: &Lab,
    env: &[(&str, String)],
    exit: Option<i32>,
    want: Option<i32>,
    t: Instant,
) -> Row {
    let ran = Ran {
        lab,
        env,
        exit,
        want,
        failed: true,
        started: t,
    };
    row(name, ran, |s| leaks(lab, s))
}

#[test]
fn virsh_failing_and_signals_before_the_guest_boots() {
    let _one = LIBVIRT.lock().unwrap_or_else(|e| e.into_inner());
    let _daemon = Daemon::start();
    let path = format!(
        "{}:{}:{}",
        Path::new(ROOT).join("tests/faults").display(),
        Path::new(ROOT).join(".venv/bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut rows = Vec::new();
    for verb in ["define", "start"] {
        let t = Instant::now();
        let env = [
            ("PATH", path.clone()),
            ("ROLLCI_FAULT_VIRSH", verb.to_string()),
        ];
        let lab = lab();
        let exit = run_to_end(&lab, &env, &["run"]);
        let named = super::logs(&lab).contains("injected by tests/faults/virsh");
        let mut r = case(
            format!("libvirt: virsh {verb} fails"),
            &lab,
            &env,
            exit,
            Some(3),
            t,
        );
        if !named {
            r.journal_errors
                .push(format!("the run's error does not name virsh {verb}'s"));
        }
        rows.push(r);
    }
    let points = [
        "created:libvirt:disk",
        "creating:libvirt:domain",
        "created:libvirt:domain",
    ];
    for (stop, want) in [(Stop::Kill9, None), (Stop::Term, Some(5))] {
        for point in points {
            let t = Instant::now();
            let lab = lab();
            let exit = run_stopped_at(&lab, &[], point, stop);
            rows.push(case(
                format!("libvirt: {stop:?} at {point}"),
                &lab,
                &[],
                exit,
                want,
                t,
            ));
        }
    }
    report("libvirt", &rows);
}
