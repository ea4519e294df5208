//! Probes see what kept-alive clients see: real haproxy in front of an API node whose
//! keep-alive timer fires as a reused connection's request arrives (`tests/keepalive/
//! backend.py`). With haproxy's defaults as the OpenStack lab had them, a keep-alive probe
//! meets `closed` failures on reused connections while a new-connection probe of the same
//! run meets none; with the lab's shipped defaults (`option http-server-close`), neither
//! does. The keep-alive race of a real gunicorn is rare (3 in 3,872 client rounds in the
//! lab); this node makes it certain, so the test cannot pass by luck.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use crate::lab::{Lab, ROOT, unique_block};

/// The shipped defaults of the OpenStack lab's haproxy.
const DEFAULTS: &str = "examples/openstack/templates/haproxy-defaults.cfg";

/// A process of the test's, killed when the test ends (passed or not).
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn lab_text(base: [u8; 4]) -> String {
    let address = format!("{}.{}.{}.{}", base[0], base[1], base[2], base[3]);
    format!(
        r#"
[lab]
name = "keepalive"
from_release = "A"
to_release = "B"

[provider]
kind = "local"
nodes = 1
base_address = "{address}"
port = 0

[upgrade]
mode = "rolling"

[[upgrade.components]]
name = "nothing"
command = ["true"]

# Both probes every 300 ms, on the same service: each request of the keep-alive one goes
# out on the connection of the one before.
[[probes]]
name = "kept-alive"
url = "http://{{lb}}/"
interval = "300ms"
timeout = "2s"

[[probes]]
name = "new-connections"
connection = "new"
url = "http://{{lb}}/"
interval = "300ms"
timeout = "2s"
"#
    )
}

/// The backend node: closes a connection reused after 100 ms idle instead of answering.
fn backend(node: std::net::SocketAddr) -> Killed {
    let mut child = Command::new("python3")
        .arg(Path::new(ROOT).join("tests/keepalive/backend.py"))
        .args([node.ip().to_string(), node.port().to_string(), "100".into()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready");
    Killed(child)
}

/// haproxy in the foreground with `defaults` (a file's text) loaded first.
fn haproxy(
    dir: &Path,
    defaults: &str,
    vip: std::net::SocketAddr,
    node: std::net::SocketAddr,
) -> Killed {
    std::fs::write(dir.join("defaults.cfg"), defaults).unwrap();
    let proxies = format!(
        "global\n    maxconn 256\n\nfrontend vip\n    bind {vip}\n    default_backend api\n\n\
         backend api\n    server node1 {node}\n"
    );
    std::fs::write(dir.join("haproxy.cfg"), proxies).unwrap();
    let child = Command::new("haproxy")
        .args(["-db", "-f", "defaults.cfg", "-f", "haproxy.cfg"])
        .current_dir(dir)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(vip).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "haproxy did not listen on {vip}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Killed(child)
}

/// `rollci monitor` for a few seconds through the VIP; the services of its summary.
fn monitor(defaults: &str) -> Vec<Value> {
    let lab = Lab::with_text(&lab_text(unique_block()));
    lab.expect(&["provision"], 0);
    let (vip, node) = (lab.host("lb"), lab.host("node1"));
    let _node = backend(node);
    let _haproxy = haproxy(lab.dir.path(), defaults, vip, node);
    lab.expect(&["monitor", "--duration", "4s"], 0);
    let evidence = lab.workspace().join("evidence");
    let summary = std::fs::read_dir(&evidence)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .expect("monitor-*.json");
    let summary: Value = serde_json::from_str(&std::fs::read_to_string(summary).unwrap()).unwrap();
    let probes = std::fs::read_to_string(
        evidence.join(
            std::fs::read_dir(&evidence)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .find(|n| n.to_string_lossy().ends_with(".jsonl"))
                .unwrap(),
        ),
    )
    .unwrap();
    assert!(
        probes.contains("\"connection\":\"reused\""),
        "the keep-alive probe reused no connection: {probes}"
    );
    drop(_haproxy);
    lab.expect(&["cleanup"], 0);
    summary["services"].as_array().unwrap().clone()
}

fn service<'a>(services: &'a [Value], name: &str) -> &'a Value {
    services.iter().find(|s| s["name"] == name).unwrap()
}

fn failed(service: &Value) -> u64 {
    let failures = service["failures"].as_object().unwrap();
    failures.values().map(|n| n.as_u64().unwrap()).sum()
}

#[test]
fn a_keep_alive_probe_meets_a_reused_connection_closed_and_a_new_connection_probe_does_not() {
    let shipped = std::fs::read_to_string(Path::new(ROOT).join(DEFAULTS)).unwrap();
    assert!(shipped.contains("    option http-server-close\n"));
    // The lab's haproxy before the fix: the same defaults without that one line.
    let before = shipped.replace("    option http-server-close\n", "");
    let services = monitor(&before);
    let kept = service(&services, "kept-alive");
    assert_eq!(kept["connection"], "keep-alive");
    assert!(
        kept["failures"]["closed"].as_u64().unwrap_or(0) >= 2,
        "{kept}"
    );
    assert_eq!(
        kept["failures_by_connection"]["reused"].as_u64(),
        Some(failed(kept)),
        "every failure on a reused connection: {kept}"
    );
    assert!(kept["downtime_ms"].as_u64().unwrap() > 0, "{kept}");
    let window = &kept["windows"][0];
    assert_eq!(window["class"], "closed", "{window}");
    assert_eq!(window["connection"], "reused", "{window}");
    let new = service(&services, "new-connections");
    assert_eq!(new["connection"], "new");
    assert_eq!(
        failed(new),
        0,
        "a new connection never meets the race: {new}"
    );
    assert!(new["probes"].as_u64().unwrap() >= 8, "{new}");

    let services = monitor(&shipped);
    for name in ["kept-alive", "new-connections"] {
        let s = service(&services, name);
        assert_eq!(failed(s), 0, "the shipped defaults drop nothing: {s}");
        assert!(s["probes"].as_u64().unwrap() >= 8, "{s}");
    }
}
