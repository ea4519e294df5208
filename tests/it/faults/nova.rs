//! The `openstack` provider's row against a real Keystone v3 and the Nova stand-in
//! `tests/fake_nova.py` (mimic cannot hang): Nova taking a create, a get or a delete and
//! then holding its answer past rollci's `api_timeout`. The server exists by then (a create
//! that timed out still made one); cleanup must find it by its tag and delete it. The leak
//! check reads fake_nova's own record of every server.

use std::time::Instant;

use serde_json::Value;

use super::{Ran, processes_of_run, report, row, run_to_end};
use crate::keystone::Keystone;
use crate::lab::Lab;
use crate::openstack::{FakeNova, keystone_clouds, v3_lab};

fn lab(keystone: &Keystone, metadata: &str) -> Lab {
    let extra = "api_timeout = \"3s\"\nattempts = 2\ndelete_wait = \"60s\"\n";
    let lab = Lab::with_text(&v3_lab("lab-cloud", extra, metadata));
    keystone_clouds(&lab, keystone);
    lab
}

/// Servers of the run Nova still has (not deleted), as fake_nova records them.
fn leaks(nova: &FakeNova, state: &Value) -> Vec<String> {
    let run = state["run_id"].as_str().unwrap_or("?");
    let mut found = processes_of_run(run);
    for server in nova.dump()["servers"].as_array().into_iter().flatten() {
        if server["metadata"]["rollci_run"] == run && server["deleted"] != true {
            found.push(format!(
                "server {} ({}) alive in Nova",
                server["id"], server["status"]
            ));
        }
    }
    found
}

fn servers_of(nova: &FakeNova, run: &str) -> usize {
    let dump = nova.dump();
    let servers = dump["servers"].as_array().cloned().unwrap_or_default();
    servers
        .iter()
        .filter(|s| s["metadata"]["rollci_run"] == run)
        .count()
}

#[test]
fn nova_hanging_past_the_timeout_on_create_get_and_delete() {
    let keystone = Keystone::start();
    let nova = FakeNova::start(&keystone, &["RegionOne"]);
    let mut rows = Vec::new();
    // (case, hook, the run's exit): a create or get that hangs fails the attempt, which is
    // retried on a new server; a delete that hangs is sent again and finds the server gone.
    let cases = [
        ("create hangs", "create", Some(0)),
        ("get hangs", "get", Some(0)),
        ("delete hangs", "delete", Some(0)),
    ];
    for (case, hook, want) in cases {
        let t = Instant::now();
        let lab = lab(
            &keystone,
            &format!("fake_hang = \"{hook}\", fake_hang_seconds = \"8\""),
        );
        let exit = run_to_end(&lab, &[], &["run"]);
        let run = lab.state()["run_id"].as_str().unwrap_or("?").to_string();
        let ran = Ran {
            lab: &lab,
            env: &[],
            exit,
            want,
            failed: want != Some(0),
            started: t,
        };
        let mut r = row(format!("openstack (fake Nova): {case}"), ran, |s| {
            leaks(&nova, s)
        });
        // The hung create made a server all the same: a second attempt, and both deleted.
        let made = servers_of(&nova, &run);
        if made != if hook == "create" { 2 } else { 1 } {
            r.journal_errors.push(format!("{made} servers made"));
        }
        rows.push(r);
    }
    report("openstack-fake-nova", &rows);
}
