//! The `openstack` provider's row of the matrix, against mimic (a real OpenStack emulator,
//! `tests/mimic/start`): signals at the moments a server is journaled, made and deleted,
//! and Nova failing on cue (500 on create, ERROR after create, 500 on delete). The leak
//! check asks mimic's own server list for the run's tag.

use std::time::Instant;

use serde_json::Value;

use super::{Ran, Row, Stop, processes_of_run, report, row, run_stopped_at, run_to_end};
use crate::lab::Lab;
use crate::openstack::{Mimic, lab_text};

struct Case {
    name: String,
    lab: Lab,
    user: String,
}

fn case(mimic: &Mimic, tag: &str, provider_extra: &str, metadata: &str) -> Case {
    let lab = Lab::with_text(&lab_text("mimic", provider_extra, metadata));
    let user = format!("rollci-faults-{tag}-{}", std::process::id());
    mimic.clouds_yaml(&lab, &user, "k");
    Case {
        name: format!("openstack (mimic): {tag}"),
        lab,
        user,
    }
}

fn leaks(mimic: &Mimic, user: &str, state: &Value) -> Vec<String> {
    let run = state["run_id"].as_str().unwrap_or("?");
    let mut found = processes_of_run(run);
    for server in mimic.servers(user, "ORD") {
        if server["metadata"]["rollci_run"] == run {
            found.push(format!(
                "server {} ({}) alive in Nova",
                server["id"], server["status"]
            ));
        }
    }
    found
}

fn settle_case(
    mimic: &Mimic,
    c: Case,
    exit: Option<i32>,
    want: Option<i32>,
    failed: bool,
    t: Instant,
) -> Row {
    let ran = Ran {
        lab: &c.lab,
        env: &[],
        exit,
        want,
        failed,
        started: t,
    };
    row(c.name.clone(), ran, |s| leaks(mimic, &c.user, s))
}

/// (`server_building = "0"`: mimic brings back a server deleted while a timed BUILD is
/// pending, ACTIVE when the timer fires, `tests/mimic/start`; real Nova does not.)
#[test]
fn signals_and_nova_failures() {
    let mimic = Mimic::start();
    let mut rows = Vec::new();
    let points = [
        "creating:openstack:server",
        "created:openstack:server",
        "destroying:openstack:server",
    ];
    for (stop, want) in [(Stop::Kill9, None), (Stop::Term, Some(5))] {
        for point in points {
            let t = Instant::now();
            let tag = format!("{stop:?} at {point}");
            let c = case(
                &mimic,
                &tag.replace([' ', ':'], "-"),
                "",
                "server_building = \"0\"",
            );
            let exit = run_stopped_at(&c.lab, &[], point, stop);
            // SIGTERM cannot stop `run`'s own cleanup, which then passes; the run still
            // ends as aborted.
            let late = point.starts_with("destroying") && want.is_some();
            let mut c = c;
            c.name = format!("openstack (mimic): {tag}");
            rows.push(settle_case(&mimic, c, exit, want, !late, t));
        }
    }
    let nova = [
        (
            "create answers 500",
            "attempts = 2\n",
            r#"create_server_failure = '{"code": 500, "message": "boom"}'"#,
            Some(3),
        ),
        (
            "server goes to ERROR",
            "attempts = 2\n",
            "server_error = \"1\"",
            Some(3),
        ),
        (
            "delete answers 500 twice",
            "",
            r#"server_building = "0", delete_server_failure = '{"times": 2}'"#,
            Some(0),
        ),
    ];
    for (tag, extra, metadata, want) in nova {
        let t = Instant::now();
        let c = case(&mimic, &tag.replace(' ', "-"), extra, metadata);
        let exit = run_to_end(&c.lab, &[], &["run"]);
        rows.push(settle_case(&mimic, c, exit, want, want != Some(0), t));
    }
    report("openstack-mimic", &rows);
}
