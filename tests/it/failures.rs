//! Failures: retries, a failure in each step then `cleanup`, the lock, missing tools.

use std::time::{Duration, Instant};

use crate::lab::{Lab, ROOT};

fn playbook(name: &str) -> String {
    format!("{ROOT}/examples/demo/playbooks/{name}")
}

/// Runs the flow step by step until the one that fails, then cleans up and checks nothing
/// is left and the flow is reported incomplete.
fn fail_at(extra: &str, failing: &[&str], code: i32) {
    let lab = Lab::demo(extra);
    let flow: [&[&str]; 5] = [
        &["provision"],
        &["deploy"],
        &["verify", "--phase", "before"],
        &["upgrade"],
        &["verify", "--phase", "after"],
    ];
    for args in flow {
        if args == failing {
            let out = lab.expect(args, code);
            assert!(String::from_utf8_lossy(&out.stdout).contains("FAILED"));
            break;
        }
        lab.expect(args, 0);
    }
    let out = lab.expect(&["cleanup"], 0);
    assert!(String::from_utf8_lossy(&out.stdout).contains("INCOMPLETE FLOW"));
    let status = lab.status();
    assert_eq!(status["summary"]["flow_complete"], false);
    assert_eq!(status["summary"]["outcome"], "failed");
    lab.assert_nothing_left();
}

#[test]
fn failure_in_provision_then_cleanup() {
    let extra = format!(
        "[[provision.vms]]\nname = \"broken-vm-prep\"\nplaybook = \"{}\"\non_failure = \"virtual\"\n",
        playbook("fail.yml")
    );
    fail_at(&extra, &["provision"], 3);
}

#[test]
fn failure_in_deploy_then_cleanup() {
    // The lab is up (processes running) when the second deploy action fails.
    let extra = format!(
        "[[deploy.actions]]\nname = \"post-deploy\"\nplaybook = \"{}\"\n",
        playbook("fail.yml")
    );
    fail_at(&extra, &["deploy"], 3);
}

#[test]
fn failure_in_verify_before_is_a_check_failure() {
    let extra = format!(
        "[[verify.actions]]\nname = \"smoke\"\nplaybook = \"{}\"\n",
        playbook("fail.yml")
    );
    fail_at(&extra, &["verify", "--phase", "before"], 1);
}

#[test]
fn failure_in_upgrade_then_cleanup() {
    let extra = format!(
        "[[upgrade.components]]\nname = \"broken\"\nplaybook = \"{}\"\n",
        playbook("fail.yml")
    );
    fail_at(&extra, &["upgrade"], 3);
}

#[test]
fn failure_in_verify_after_then_cleanup() {
    let extra = "[[verify.actions]]\nname = \"after-only\"\ncommand = [\"python3\", \"-c\", \"import os, sys; sys.exit(os.environ['ROLLCI_PHASE'] == 'after')\"]\n";
    fail_at(extra, &["verify", "--phase", "after"], 1);
}

#[test]
fn a_playbook_failing_once_passes_on_retry() {
    let lab = Lab::demo("");
    let marker = lab.dir.path().join("fail-once.marker");
    let text = std::fs::read_to_string(&lab.config).unwrap().replace(
        "[[provision.host]]",
        &format!(
            "[[provision.host]]\nname = \"flaky\"\nplaybook = \"{}\"\nretries = 1\nextra_vars = {{ marker = \"{}\" }}\n\n[[provision.host]]",
            playbook("fail-once.yml"),
            marker.display()
        ),
    );
    std::fs::write(&lab.config, text).unwrap();
    lab.expect(&["provision"], 0);
    let state = lab.state();
    let attempts = state["steps"][0]["attempts"].as_array().unwrap();
    let flaky: Vec<_> = attempts.iter().filter(|a| a["action"] == "flaky").collect();
    assert_eq!(flaky.len(), 2);
    assert_eq!(flaky[0]["outcome"], "failed");
    assert_eq!(flaky[0]["exit_code"], 2);
    assert_eq!(flaky[1]["outcome"], "passed");
    let log = std::fs::read_to_string(flaky[0]["log"].as_str().unwrap()).unwrap();
    assert!(log.contains("first attempt fails on purpose"), "{log}");
    lab.expect(&["cleanup"], 0);
    lab.assert_nothing_left();
}

#[test]
fn a_timed_out_action_is_killed_and_reported() {
    let lab = Lab::demo(
        "[[provision.vms]]\nname = \"hangs\"\ncommand = [\"sleep\", \"60\"]\ntimeout = \"1s\"\n",
    );
    let started = Instant::now();
    let out = lab.expect(&["provision"], 3);
    assert!(
        started.elapsed() < Duration::from_secs(50),
        "the timeout did not stop `sleep 60`"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("timed out after 1s"));
    lab.expect(&["cleanup"], 0);
    lab.assert_nothing_left();
}

#[test]
fn a_second_rollci_on_the_same_workspace_is_refused() {
    let lab = Lab::demo("[[provision.host]]\nname = \"slow\"\ncommand = [\"sleep\", \"3\"]\n");
    let mut first = std::process::Command::new(assert_cmd::cargo::cargo_bin("rollci"));
    first
        .current_dir(lab.dir.path())
        .env("PATH", &lab.path_env)
        .env("HOME", lab.dir.path())
        .args(["--config", lab.config.to_str().unwrap(), "provision"])
        .stdout(std::process::Stdio::null());
    let mut first = first.spawn().unwrap();
    let state = lab.workspace().join("state.json");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&state)
        .unwrap_or_default()
        .contains("\"slow\"")
    {
        assert!(
            Instant::now() < deadline,
            "first rollci never started its slow action"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = lab.expect(&["deploy"], 4);
    assert!(String::from_utf8_lossy(&out.stderr).contains("in use by another rollci"));
    assert!(first.wait().unwrap().success());
    lab.expect(&["cleanup"], 0);
    lab.assert_nothing_left();
}

#[test]
fn missing_ansible_is_named_with_install_advice() {
    let mut lab = Lab::demo("");
    lab.path_env = "/usr/bin:/bin".into();
    let out = lab.expect(&["doctor"], 3);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("MISSING  ansible-playbook"), "{stdout}");
    assert!(stdout.contains("pip install ansible-core"), "{stdout}");
    let out = lab.expect(&["provision"], 3);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("`ansible-playbook` not found"), "{stderr}");
    assert!(stderr.contains("hint: install ansible-core"), "{stderr}");
    lab.expect(&["cleanup"], 0);
    lab.assert_nothing_left();
}

/// The teardown after a failed attempt keeps the logs of the lab that failed in a folder
/// of their own, which the lab rebuilt for the next attempt, and cleanup, never overwrite.
#[test]
fn the_logs_of_a_lab_torn_down_after_a_failure_are_kept_apart() {
    let extra = format!(
        "[[deploy.actions]]\nname = \"post-deploy\"\nplaybook = \"{}\"\non_failure = \"virtual\"\n",
        playbook("fail.yml")
    );
    let lab = Lab::demo(&extra);
    lab.expect(&["provision"], 0);
    let out = lab.expect(&["deploy"], 3);
    let said = String::from_utf8_lossy(&out.stdout);
    let run = lab.state()["run_id"].as_str().unwrap().to_string();
    let logs = lab.workspace().join("logs").join(&run);
    let apart = logs.join("lab-after-deploy-post-deploy-1");
    assert!(said.contains(&apart.display().to_string()), "{said}");
    for node in ["node1", "node2", "node3"] {
        let log = apart.join("nodes").join(node).join("node.log");
        let text = std::fs::read_to_string(&log)
            .unwrap_or_else(|e| panic!("{} not kept: {e}", log.display()));
        assert!(!text.is_empty(), "{} is empty", log.display());
    }
    lab.expect(&["cleanup"], 0);
    assert!(
        apart.join("nodes/node1/node.log").exists(),
        "cleanup kept it"
    );
    lab.assert_nothing_left();
}
