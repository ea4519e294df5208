//! Upgrade evidence on the real demo lab: downtime of an all-at-once upgrade, budgets, a lost
//! persistent resource, a smoke regression, and `rollci monitor`.

use std::time::{Duration, Instant};

use crate::lab::Lab;

#[test]
fn all_at_once_downtime_is_measured_and_tagged_with_the_action() {
    let lab = Lab::example("all-at-once.toml", "");
    lab.expect(&["run"], 0);
    let summary = lab.json("reports/summary.json");
    let api = &summary["services"]["api"];
    assert!(
        api["downtime_ms"].as_u64().unwrap() > 0,
        "no outage seen: {api}"
    );
    let windows = api["windows"].as_array().unwrap();
    assert!(
        windows.iter().all(|w| w["action"] == "upgrade-all"),
        "{windows:?}"
    );
    assert!(api["availability"].as_f64().unwrap() < 100.0);
    for node in ["node1", "node2", "node3"] {
        let w = &summary["services"][format!("node@{node}")]["windows"];
        assert!(!w.as_array().unwrap().is_empty(), "{node} never down");
    }
    lab.assert_nothing_left();
}

#[test]
fn downtime_over_budget_fails_the_check_and_still_cleans_up() {
    let lab = Lab::example("all-at-once.toml", "");
    let text = std::fs::read_to_string(&lab.config)
        .unwrap()
        .replace("max_downtime = \"60s\"", "max_downtime = \"0ms\"");
    std::fs::write(&lab.config, text).unwrap();
    let out = lab.expect(&["run"], 1);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("downtime over budget: `api` was down"));
    // The error line (what a CI log's tail keeps) names the first failure and its phase.
    let error = stdout
        .lines()
        .find(|l| l.contains("downtime over budget"))
        .unwrap();
    assert!(
        error.contains("; the first at ") && error.contains(" during upgrade-all: "),
        "{error}"
    );
    let summary = lab.json("reports/summary.json");
    let upgrade = summary["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "upgrade")
        .unwrap()
        .clone();
    assert_eq!(upgrade["exit_code"], 1);
    assert_eq!(summary["services"]["api"]["within_budget"], false);
    let junit =
        std::fs::read_to_string(lab.workspace().join("reports/junit/availability.xml")).unwrap();
    assert!(junit.contains("<failure"), "{junit}");
    lab.assert_nothing_left();
}

#[test]
fn a_record_deleted_during_the_upgrade_is_reported_lost() {
    let delete = "import os, urllib.request as u; u.build_opener(u.ProxyHandler({})).open(u.Request('http://' + os.environ['ROLLCI_HOST_LB'] + '/records/rollci-alpha', method='DELETE'))";
    let extra = format!(
        "[[upgrade.components]]\nname = \"vandal\"\ncommand = [\"python3\", \"-c\", \"{delete}\"]\n"
    );
    let lab = Lab::demo(&extra);
    let out = lab.expect(&["run"], 1);
    assert!(String::from_utf8_lossy(&out.stdout).contains("`record-alpha` lost"));
    let summary = lab.json("reports/summary.json");
    assert_eq!(summary["persistent"]["lost"], 1);
    assert_eq!(summary["persistent"]["intact"], 1);
    let lost = summary["persistent"]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["outcome"] == "lost")
        .unwrap()
        .clone();
    assert_eq!(lost["name"], "record-alpha");
    let verify = summary["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "verify:after")
        .unwrap()
        .clone();
    assert_eq!(verify["exit_code"], 1);
    lab.assert_nothing_left();
}

#[test]
fn smoke_regressions_are_named_and_monitor_runs_alone() {
    let lab = Lab::demo("");
    lab.expect(&["provision"], 0);
    lab.expect(&["deploy"], 0);
    lab.expect(&["verify", "--phase", "before"], 0);
    let out = lab.expect(&["monitor", "--duration", "1s"], 0);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("--- api:") && stdout.contains("0 ms down"),
        "{stdout}"
    );
    monitor_stops_on_ctrl_c(&lab);
    lab.expect(&["upgrade"], 0);
    let out = lab
        .cmd(&["verify", "--phase", "after"])
        .env("ROLLCI_SMOKE_BREAK", "test_list_records")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let smoke = lab.json("evidence/smoke-after.json");
    assert_eq!(
        smoke["regressions"],
        serde_json::json!(["test_api.SmokeTest.test_list_records"])
    );
    assert_eq!(smoke["counts"]["failed"], 1);
    lab.expect(&["cleanup"], 0);
    let summary = lab.json("reports/summary.json");
    assert_eq!(
        summary["smoke"]["regressions"][0],
        "test_api.SmokeTest.test_list_records"
    );
    lab.assert_nothing_left();
}

/// `rollci monitor` without a duration runs until SIGINT, then writes its results.
fn monitor_stops_on_ctrl_c(lab: &Lab) {
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("rollci"))
        .current_dir(lab.dir.path())
        .env("PATH", &lab.path_env)
        .args(["--config", lab.config.to_str().unwrap(), "monitor"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("monitor ignored SIGINT");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    let evidence = std::fs::read_dir(lab.workspace().join("evidence")).unwrap();
    let probes = evidence
        .flatten()
        .filter(|e| {
            e.file_name().to_string_lossy().starts_with("monitor-")
                && e.file_name().to_string_lossy().ends_with(".jsonl")
        })
        .map(|e| std::fs::read_to_string(e.path()).unwrap().lines().count())
        .max()
        .unwrap_or(0);
    assert!(probes > 10, "monitor wrote {probes} probe lines");
}
