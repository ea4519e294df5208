//! The happy paths: `rollci run`, and the same steps run one by one by separate processes.

use crate::lab::{Lab, http};

#[test]
fn run_passes_every_step_and_leaves_nothing() {
    let lab = Lab::demo("");
    let out = lab.expect(&["run"], 0);
    let stdout = String::from_utf8_lossy(&out.stdout);
    for banner in [
        "==> provision",
        "<== upgrade passed",
        "<== verify:after passed",
        "flow complete",
    ] {
        assert!(stdout.contains(banner), "missing {banner:?}");
    }
    let status = lab.status();
    let steps = status["summary"]["steps"].as_array().unwrap();
    let labels: Vec<&str> = steps.iter().map(|s| s["step"].as_str().unwrap()).collect();
    assert_eq!(
        labels,
        [
            "provision",
            "deploy",
            "verify:before",
            "upgrade",
            "verify:after",
            "report",
            "cleanup"
        ]
    );
    assert!(steps.iter().all(|s| s["outcome"] == "passed"), "{steps:?}");
    assert_eq!(status["summary"]["outcome"], "passed");
    assert_eq!(status["summary"]["flow_complete"], true);
    // Three node processes at A, three restarted at B, one haproxy: all journaled.
    let processes = status["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "process")
        .count();
    assert!(processes >= 7, "only {processes} processes journaled");
    lab.assert_nothing_left();
    assert_smoke_attempts_journaled(&lab);
    assert_lab_logs_kept(&lab, &stdout);
    let summary = lab.json("reports/summary.json");
    assert_eq!(summary["summary_version"], 1);
    assert_rolling_evidence(&lab, &summary);
}

/// The nodes' own logs outlive the lab folder: cleanup copies them into the run's logs,
/// and they hold what the nodes wrote under both releases.
fn assert_lab_logs_kept(lab: &Lab, stdout: &str) {
    let state = lab.state();
    let run = state["run_id"].as_str().unwrap();
    let kept = lab.workspace().join("logs").join(run).join("lab");
    assert!(stdout.contains("--- kept "), "cleanup says what it kept");
    for node in ["node1", "node2", "node3"] {
        let log = kept.join("nodes").join(node).join("node.log");
        let text = std::fs::read_to_string(&log)
            .unwrap_or_else(|e| panic!("{} not kept: {e}", log.display()));
        assert!(!text.is_empty(), "{} is empty", log.display());
    }
    assert!(
        !lab.workspace().join("lab").exists(),
        "the lab itself is gone"
    );
}

/// The smoke command of each verify phase is on record like an action: one attempt that
/// ran to its end, with its exit status and its log.
fn assert_smoke_attempts_journaled(lab: &Lab) {
    let state = lab.json("state.json");
    let verifies: Vec<&serde_json::Value> = state["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["step"] == "verify")
        .collect();
    assert_eq!(verifies.len(), 2, "{state}");
    for step in verifies {
        let attempts = step["attempts"].as_array().unwrap();
        let smoke: Vec<_> = attempts.iter().filter(|a| a["action"] == "smoke").collect();
        assert_eq!(smoke.len(), 1, "{step}");
        assert_eq!(smoke[0]["outcome"], "passed", "{step}");
        assert!(smoke[0]["ended"].is_string(), "{step}");
        assert!(smoke[0]["exit_code"].is_i64(), "{step}");
        let log = std::path::Path::new(smoke[0]["log"].as_str().unwrap());
        assert!(log.is_file(), "{}", log.display());
    }
}

/// The evidence of a rolling upgrade through haproxy: no downtime at the VIP, each node's
/// own outage tagged with its component, smoke and persistent resources intact.
fn assert_rolling_evidence(lab: &Lab, summary: &serde_json::Value) {
    let api = &summary["services"]["api"];
    assert!(api["probes"].as_u64().unwrap() > 50, "{api}");
    assert_eq!(api["downtime_ms"], 0, "{api}");
    assert_eq!(api["within_budget"], true);
    assert_eq!(summary["services"]["records-cycle"]["downtime_ms"], 0);
    for node in ["node1", "node2", "node3"] {
        let windows = summary["services"][format!("node@{node}")]["windows"]
            .as_array()
            .unwrap()
            .clone();
        assert!(!windows.is_empty(), "{node} was never seen down");
        assert!(
            windows.iter().all(|w| w["action"] == node),
            "{node}: {windows:?}"
        );
    }
    let actions: Vec<_> = summary["upgrade_actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].clone())
        .collect();
    assert_eq!(actions, ["node1", "node2", "node3"]);
    assert_eq!(summary["smoke"]["before"]["passed"], 5);
    assert_eq!(summary["smoke"]["after"]["skipped"], 1);
    assert_eq!(summary["persistent"]["intact"], 2);
    for file in ["junit/availability.xml", "report.html"] {
        assert!(
            lab.workspace().join("reports").join(file).exists(),
            "no {file}"
        );
    }
    let junit =
        std::fs::read_to_string(lab.workspace().join("reports/junit/availability.xml")).unwrap();
    assert!(
        junit.contains("api") && !junit.contains("<failure"),
        "{junit}"
    );
}

#[test]
fn steps_run_alone_upgrade_every_node_and_keep_data() {
    let lab = Lab::demo("");
    lab.expect(&["provision"], 0);
    lab.expect(&["deploy"], 0);
    lab.expect(&["verify", "--phase", "before"], 0);
    let vip = lab.host("lb");
    let (code, _) = http(
        vip,
        "PUT",
        "/records/kept-by-test",
        Some(r#"{"content": "written under A"}"#),
    );
    assert!(code == 200 || code == 201, "PUT gave {code}");
    for node in ["node1", "node2", "node3"] {
        assert!(
            http(lab.host(node), "GET", "/version", None)
                .1
                .contains("\"A\"")
        );
    }
    lab.expect(&["upgrade"], 0);
    for node in ["node1", "node2", "node3"] {
        let (code, body) = http(lab.host(node), "GET", "/version", None);
        assert_eq!(code, 200);
        assert!(
            body.contains("\"release\": \"B\"") || body.contains("\"release\":\"B\""),
            "{node}: {body}"
        );
        let (code, body) = http(lab.host(node), "GET", "/records/kept-by-test", None);
        assert_eq!(code, 200, "{node} lost the record");
        assert!(body.contains("written under A"), "{body}");
    }
    lab.expect(&["verify", "--phase", "after"], 0);
    let inventory = lab.expect(&["inventory"], 0);
    assert!(String::from_utf8_lossy(&inventory.stdout).contains("\"node3\""));
    lab.expect(&["report"], 0);
    lab.expect(&["cleanup"], 0);
    let status = lab.status();
    assert_eq!(status["summary"]["flow_complete"], true);
    lab.assert_nothing_left();
}

#[test]
fn shell_metacharacters_in_releases_arrive_literally() {
    let lab = Lab::demo("");
    let trap = lab.dir.path().join("PWNED");
    let trap2 = lab.dir.path().join("PWNED2");
    let trap3 = lab.dir.path().join("PWNED3");
    let release = format!(
        "1; touch {} $(touch {}) `id` {{{{ 7*7 }}}} {{{{ lookup('pipe', 'touch {}') }}}}",
        trap.display(),
        trap2.display(),
        trap3.display()
    );
    lab.expect(&["--from-release", &release, "provision"], 0);
    lab.expect(&["--from-release", &release, "deploy"], 0);
    lab.expect(&["verify", "--phase", "before"], 0);
    let (_, body) = http(lab.host("node1"), "GET", "/version", None);
    let version: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(version["release"], release.as_str());
    assert!(
        !trap.exists() && !trap2.exists(),
        "a shell ran the release name"
    );
    assert!(!trap3.exists(), "Ansible templated the release name");
    lab.expect(&["cleanup"], 0);
    lab.assert_nothing_left();
}
