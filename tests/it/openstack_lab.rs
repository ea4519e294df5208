//! The real OpenStack lab (`examples/openstack/`) with its upgrade broken on purpose: Keystone
//! N+1 started on node1 before `keystone-manage db_sync --expand`. The lab's schema guard
//! must stop the run in exactly that phase, the evidence must say so, and cleanup must leave
//! no process and no listening port of the lab.

use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use crate::lab::{Lab, ROOT, unique_block};

/// The OpenStack lab file with absolute playbooks, its own address block, no persistent
/// resources (their cleanup would need the lab's cloud), no tempest or Rally (minutes of
/// their own, before the phase this test breaks), and `edit` applied first (to the
/// file as shipped).
fn lab_text(edit: impl Fn(String) -> String) -> String {
    let dir = Path::new(ROOT).join("examples/openstack");
    let text = edit(std::fs::read_to_string(dir.join("rollci.toml")).unwrap());
    let base = unique_block();
    let text = text
        .replace(
            "base_address = \"127.0.0.2\"",
            &format!(
                "base_address = \"{}.{}.{}.{}\"",
                base[0], base[1], base[2], base[3]
            ),
        )
        .replace(
            "playbook = \"playbooks/",
            &format!("playbook = \"{}/playbooks/", dir.display()),
        )
        .replace(
            "\"lab/sdkprobe-run\"",
            &format!("\"{}/lab/sdkprobe-run\"", dir.display()),
        );
    let text = cut(&text, "[[persistent]]", "# The rolling upgrade");
    cut(
        &text,
        "# The smoke suite is Tempest",
        "# Persistent resources",
    )
}

/// `text` without the part from `from` up to `to` (when `from` is there).
fn cut(text: &str, from: &str, to: &str) -> String {
    match (text.find(from), text.find(to)) {
        (Some(start), Some(end)) if start < end => format!("{}{}", &text[..start], &text[end..]),
        (None, _) => text.to_string(),
        _ => panic!("`{from}` is not before `{to}` in the lab file"),
    }
}

#[test]
fn keystone_started_before_expand_fails_in_that_phase_and_cleans_up() {
    let text = lab_text(|t| {
        t.replacen(
            "name = \"keystone-expand\"\nplaybook = \"playbooks/upgrade-db.yml\"\nextra_vars = { service = \"keystone\", phase = \"expand\" }",
            "name = \"keystone-node1-early\"\nplaybook = \"playbooks/upgrade-node.yml\"\nextra_vars = { service = \"keystone\", node = \"node1\" }",
            1,
        )
    });
    assert!(text.contains("keystone-node1-early"), "the edit took");
    let lab = Lab::with_text(&text);
    let clouds = lab.workspace().join("lab/clouds.yaml");
    let out = lab
        .cmd(&["run"])
        .env("OS_CLIENT_CONFIG_FILE", &clouds)
        .env("OS_CLOUD", "rollci-openstack")
        .timeout(Duration::from_secs(1500))
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(3), "{said}");
    assert!(
        said.contains("action `keystone-node1-early` failed"),
        "the failing phase is named: {said}"
    );
    assert!(
        said.contains("db_sync") && said.contains("--check"),
        "the schema guard is the evidence: {said}"
    );
    let state = lab.json("state.json");
    let hosts = state["hosts"].as_array().unwrap().clone();
    assert!(!hosts.is_empty());
    let again = lab.run(&["cleanup"]);
    assert!(
        matches!(again.status.code(), Some(0 | 1)),
        "a second cleanup is a no-op"
    );
    for host in &hosts {
        let address = host["address"].as_str().unwrap();
        for port in host["ports"].as_object().unwrap().values() {
            let target = format!("{address}:{}", port.as_u64().unwrap());
            let open =
                TcpStream::connect_timeout(&target.parse().unwrap(), Duration::from_millis(300));
            assert!(open.is_err(), "{target} still listens after cleanup");
        }
    }
    let marker = format!("ROLLCI_RUN_ID={}", state["run_id"].as_str().unwrap());
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
        let found = environ.split(|b| *b == 0).any(|v| v == marker.as_bytes());
        assert!(
            !found,
            "process {:?} of the run is alive",
            entry.file_name()
        );
    }
    assert!(
        !lab.workspace().join("lab").exists(),
        "the lab folder is gone"
    );
}
