//! Probes with `auth = "openstack"` against a real Keystone (`tests/keystone/start`: keystone
//! from PyPI under gunicorn, sqlite and key repositories in a temp folder), through the real
//! `rollci` binary: tokens are fetched from the `OS_*` variables, renewed when Keystone stops
//! accepting them, and the password never lands in rollci's output or evidence.
//!
//! Revocation mid-run: `keystone-manage fernet_rotate`. The test Keystone keeps
//! `[fernet_tokens] max_active_keys = 2` (staged key 0 and the primary), so one rotation
//! promotes the staged key, stages a new one and deletes the old primary: every token issued
//! before it no longer decrypts and Keystone answers 401. Keystone reads the key repository on
//! every request (no cache is configured), so the running server sees it at once, while the
//! credentials stay valid and the renewal gets a good token. Changing the password would also
//! revoke tokens but would invalidate rollci's credentials with them; a revocation event
//! (role unassignment) also revokes tokens issued in the same second, the renewal included.

use std::collections::BTreeSet;
use std::hash::{BuildHasher, RandomState};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::lab::{Lab, ROOT, unique_block};

/// Requests of the test itself carry this User-Agent; rollci's carry none.
const TEST_AGENT: &str = "rollci-it-keystone";
/// The User-Agent of `tests/keystone/start`'s readiness checks.
const START_AGENT: &str = "keystone/start";

/// The folder of one Keystone; its `Drop` stops the server (`tests/keystone/stop`) before
/// the folder goes, whether the start succeeded or not.
struct Server {
    dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let stop = Path::new(ROOT).join("tests/keystone/stop");
        let stopped = std::process::Command::new(stop)
            .arg(self.dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !stopped {
            // Last resort: the whole process group, by the pid file.
            let pid = std::fs::read_to_string(self.dir.path().join("gunicorn.pid"));
            if let Ok(pid) = pid.as_deref().map(str::trim)
                && let Ok(pid) = pid.parse::<i32>()
            {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
}

/// A running Keystone with its admin credentials.
pub struct Keystone {
    pub auth_url: String,
    pub username: String,
    pub password: String,
    pub project: String,
    pub port: u16,
    server: Server,
}

impl Keystone {
    /// Starts a Keystone in its own temp folder on its own port (chosen by the script).
    pub fn start() -> Keystone {
        let server = Server {
            dir: tempfile::Builder::new()
                .prefix("rollci-ks-")
                .tempdir()
                .unwrap(),
        };
        let started = Instant::now();
        let out = std::process::Command::new(Path::new(ROOT).join("tests/keystone/start"))
            .arg(server.dir.path())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "tests/keystone/start failed ({:?}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let line = String::from_utf8(out.stdout).unwrap();
        let info: Value = serde_json::from_str(line.trim())
            .unwrap_or_else(|e| panic!("not one JSON line ({e}): {line:?}"));
        eprintln!(
            "--- keystone at {} ready in {:.1}s",
            info["auth_url"],
            started.elapsed().as_secs_f64()
        );
        let text = |k: &str| info[k].as_str().unwrap().to_string();
        Keystone {
            auth_url: text("auth_url"),
            username: text("username"),
            password: text("password"),
            project: text("project"),
            port: info["port"].as_u64().unwrap() as u16,
            server,
        }
    }

    pub fn dir(&self) -> &Path {
        self.server.dir.path()
    }

    /// The `OS_*` variables of an openrc for this Keystone, with `password`.
    pub fn os_env(&self, password: &str) -> Vec<(&'static str, String)> {
        vec![
            ("OS_AUTH_URL", self.auth_url.clone()),
            ("OS_USERNAME", self.username.clone()),
            ("OS_PASSWORD", password.to_string()),
            ("OS_PROJECT_NAME", self.project.clone()),
            ("OS_USER_DOMAIN_NAME", "Default".into()),
            ("OS_PROJECT_DOMAIN_NAME", "Default".into()),
        ]
    }

    /// One HTTP/1.0 request to Keystone: (status, raw headers, body).
    pub fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (u16, String, String) {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(120)))
            .unwrap();
        let body = body.unwrap_or("");
        let auth = token
            .map(|t| format!("X-Auth-Token: {t}\r\n"))
            .unwrap_or_default();
        let request = format!(
            "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{}\r\nUser-Agent: {TEST_AGENT}\r\n{auth}\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.port,
            body.len()
        );
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        (status, head.to_string(), body.to_string())
    }

    /// A new project-scoped token of the admin user.
    pub fn token(&self) -> String {
        let body = serde_json::json!({ "auth": {
            "identity": { "methods": ["password"], "password": { "user": {
                "name": self.username, "domain": { "name": "Default" }, "password": self.password,
            }}},
            "scope": { "project": { "name": self.project, "domain": { "name": "Default" } } },
        }});
        let (status, head, body) =
            self.request("POST", "/v3/auth/tokens", None, Some(&body.to_string()));
        assert_eq!(status, 201, "{body}");
        head.lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("x-subject-token")
                    .then(|| v.trim().to_string())
            })
            .unwrap()
    }

    /// `keystone-manage fernet_rotate`: with two active keys, every token issued before is
    /// invalid from now on.
    pub fn rotate_fernet_keys(&self) {
        let owner = std::fs::metadata(self.dir()).unwrap();
        let out =
            std::process::Command::new(Path::new(ROOT).join(".venv-keystone/bin/keystone-manage"))
                .arg("--config-file")
                .arg(self.dir().join("keystone.conf"))
                .args(["fernet_rotate", "--keystone-user"])
                .arg(owner.uid().to_string())
                .arg("--keystone-group")
                .arg(owner.gid().to_string())
                .env("PYTHONWARNINGS", "ignore")
                .env("PYTHONDONTWRITEBYTECODE", "1")
                .env("XDG_CACHE_HOME", self.dir().join("cache"))
                .output()
                .unwrap();
        assert!(
            out.status.success(),
            "fernet_rotate: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// rollci's requests in gunicorn's access log, in order: (method, path, status).
    pub fn rollci_requests(&self) -> Vec<(String, String, u16)> {
        let log = std::fs::read_to_string(self.dir().join("access.log")).unwrap();
        log.lines()
            .filter(|l| !l.contains(TEST_AGENT) && !l.contains(START_AGENT))
            .filter_map(|l| {
                // ... "GET /v3/projects HTTP/1.1" 200 431 "-" "-"
                let mut quoted = l.split('"');
                let request = quoted.nth(1)?;
                let status = quoted.next()?.split_whitespace().next()?.parse().ok()?;
                let mut parts = request.split_whitespace();
                Some((parts.next()?.into(), parts.next()?.into(), status))
            })
            .collect()
    }
}

/// A lab with no actions but the mandatory upgrade, and one Keystone-authenticated probe.
fn lab(keystone: &Keystone) -> Lab {
    let b = unique_block();
    Lab::with_text(&format!(
        r#"[lab]
name = "keystone"
from_release = "A"
to_release = "B"

[provider]
kind = "local"
nodes = 1
base_address = "{}.{}.{}.{}"

[upgrade]
mode = "all-at-once"
action = {{ name = "noop", command = ["true"] }}

[[probes]]
name = "keystone-projects"
url = "http://127.0.0.1:{}/v3/projects"
auth = "openstack"
interval = "1s"
# Keystone (two gunicorn workers) on a loaded 2-core CI machine answers in seconds: probe it
# gently and wait long. This test is about tokens, not latency.
timeout = "30s"
"#,
        b[0], b[1], b[2], b[3], keystone.port
    ))
}

/// The `evidence/monitor-*.jsonl` files of the workspace, oldest first.
fn probe_files(lab: &Lab) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(lab.workspace().join("evidence")) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with("monitor-") && name.ends_with(".jsonl")
        })
        .collect();
    files.sort();
    files
}

fn records(file: &Path) -> Vec<Value> {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The summary (`monitor-*.json`) next to a probes file.
fn summary(probes: &Path) -> Value {
    let path = probes.with_extension("json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// Every file of the workspace and the given outputs, for secrets that must not be there.
fn assert_not_leaked(lab: &Lab, secret: &str, outputs: &[&[u8]]) {
    for out in outputs {
        assert!(
            !String::from_utf8_lossy(out).contains(secret),
            "the password is in rollci's output"
        );
    }
    let mut dirs = vec![lab.workspace()];
    let mut seen = 0;
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                seen += 1;
                assert!(
                    !String::from_utf8_lossy(&bytes).contains(secret),
                    "the password is in {}",
                    path.display()
                );
            }
        }
    }
    assert!(seen > 0, "no evidence written");
}

/// `rollci monitor` running in the background; killed if the test ends first.
struct Background {
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Background {
    fn spawn(lab: &Lab, args: &[&str], env: &[(&str, String)]) -> Background {
        let stdout = lab.dir.path().join("monitor.stdout");
        let stderr = lab.dir.path().join("monitor.stderr");
        let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("rollci"))
            .current_dir(lab.dir.path())
            .env_clear()
            .env("PATH", &lab.path_env)
            .env("HOME", lab.dir.path())
            .envs(env.iter().map(|(k, v)| (k, v)))
            .arg("--config")
            .arg(&lab.config)
            .args(args)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        Background {
            child,
            stdout,
            stderr,
        }
    }

    /// SIGTERM: `rollci monitor` stops probing and writes its results.
    fn terminate(&self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    }

    /// Waits for the exit (generously) and returns (code, stdout, stderr).
    fn wait(&mut self, limit: Duration) -> (Option<i32>, Vec<u8>, Vec<u8>) {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "rollci monitor still running");
            std::thread::sleep(Duration::from_millis(100));
        };
        let stdout = std::fs::read(&self.stdout).unwrap();
        let stderr = std::fs::read(&self.stderr).unwrap();
        eprintln!(
            "--- rollci monitor (background) -> {:?}\n{}{}",
            status.code(),
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        );
        (status.code(), stdout, stderr)
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn time(record: &Value) -> DateTime<Utc> {
    record["t"].as_str().unwrap().parse().unwrap()
}

#[test]
fn openstack_probes_use_a_keystone_token_and_renew_it_when_revoked() {
    let keystone = Keystone::start();
    let lab = lab(&keystone);
    let env = keystone.os_env(&keystone.password);
    lab.expect(&["provision"], 0);

    // A steady run: every probe authenticated.
    let mut monitor = lab.cmd(&["monitor", "--duration", "5s"]);
    for (k, v) in &env {
        monitor.env(k, v);
    }
    let out = monitor.output().unwrap();
    eprintln!(
        "--- rollci monitor -> {:?}\n{}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0));
    let first = probe_files(&lab).pop().expect("no monitor-*.jsonl");
    let service = &summary(&first)["services"][0];
    assert_eq!(service["name"], "keystone-projects");
    assert!(service["probes"].as_u64().unwrap() >= 3, "{service}");
    assert_eq!(service["failures"], serde_json::json!({}), "{service}");
    assert_eq!(service["downtime_ms"], 0, "{service}");
    assert_not_leaked(&lab, &keystone.password, &[&out.stdout, &out.stderr]);

    // The renewal: the token rollci holds stops working in the middle of a run.
    // rollci's probes file is buffered: Keystone's access log tells when rollci holds a token.
    let before: BTreeSet<PathBuf> = probe_files(&lab).into_iter().collect();
    let served = keystone.rollci_requests().len();
    let mut running = Background::spawn(&lab, &["monitor", "--duration", "300s"], &env);
    let deadline = Instant::now() + Duration::from_secs(90);
    while !keystone.rollci_requests()[served..]
        .iter()
        .any(|(m, p, s)| m == "GET" && p == "/v3/projects" && *s == 200)
    {
        assert!(Instant::now() < deadline, "no successful probe in 90s");
        std::thread::sleep(Duration::from_millis(100));
    }
    let old = keystone.token();
    assert_eq!(
        keystone.request("GET", "/v3/projects", Some(&old), None).0,
        200
    );
    keystone.rotate_fernet_keys();
    let rotated = Utc::now();
    assert_eq!(
        keystone.request("GET", "/v3/projects", Some(&old), None).0,
        401,
        "a token issued before the rotation still works: no revocation"
    );
    // Under load Keystone answers in seconds: wait for three good probes after the rotation
    // (Keystone's log), then stop the monitor like a person would (it writes its results).
    let rotated_at = keystone.rollci_requests().len();
    let deadline = Instant::now() + Duration::from_secs(180);
    while keystone.rollci_requests()[rotated_at..]
        .iter()
        .filter(|(m, p, s)| m == "GET" && p == "/v3/projects" && *s == 200)
        .count()
        < 3
    {
        assert!(
            Instant::now() < deadline,
            "no three good probes after the rotation"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    running.terminate();
    let (code, stdout, stderr) = running.wait(Duration::from_secs(120));
    assert_eq!(code, Some(0));
    let file = probe_files(&lab)
        .into_iter()
        .find(|f| !before.contains(f))
        .expect("no probes file of the second run");

    let all = records(&file);
    let after: Vec<&Value> = all.iter().filter(|r| time(r) > rotated).collect();
    // The renewal worked: no probe ever saw a 401, a probe started after the rotation (when
    // the old token no longer works) succeeded, and the last answered probe is good. Of the
    // three good probes Keystone logged after the rotation, those in flight across it may
    // have started before it: only one is sure to have started after.
    assert!(all.iter().all(|r| r["status"] != 401), "{all:#?}");
    let good_after = after.iter().filter(|r| r["outcome"] == "ok").count();
    assert!(
        good_after >= 1,
        "no good probe started after the rotation: {after:#?}"
    );
    let last_answered = after.iter().rev().find(|r| r["outcome"] != "timeout");
    assert_eq!(
        last_answered.map(|r| &r["outcome"]),
        Some(&Value::from("ok")),
        "{after:#?}"
    );
    // Keystone may answer 500 to a request that lists its key folder while keystone-manage
    // renames a key in it, and the rotation's CPU burst can push one probe past its timeout
    // on a loaded machine; a 401 or a failed renewal is a failure of rollci.
    let failed: Vec<&Value> = all.iter().filter(|r| r["outcome"] != "ok").collect();
    assert!(
        failed.len() <= 2
            && failed
                .iter()
                .all(|r| r["status"] == 500 || r["outcome"] == "timeout"),
        "{failed:#?}"
    );
    let service = &summary(&file)["services"][0];
    // One good probe before the rotation and three after it, at least; the summary counts
    // exactly the records of the probes file that are not the baseline's (a monitor that
    // runs long enough measures one first).
    assert!(all.len() >= 4, "{all:#?}");
    let measured = all.iter().filter(|r| r["action"] != "baseline").count();
    assert_eq!(
        service["probes"].as_u64(),
        Some(measured as u64),
        "{service}"
    );

    // Keystone's side: rollci met the 401 and got a new token, once, not one per probe:
    // one token for the first run, one for this run, one renewal.
    let requests = keystone.rollci_requests();
    let denied = requests
        .iter()
        .position(|(m, p, s)| m == "GET" && p == "/v3/projects" && *s == 401)
        .unwrap_or_else(|| panic!("rollci never got a 401: {requests:?}"));
    assert!(
        requests[denied..]
            .iter()
            .any(|(m, p, s)| m == "POST" && p == "/v3/auth/tokens" && *s == 201),
        "no new token after the 401"
    );
    let issued = requests
        .iter()
        .filter(|(m, p, _)| m == "POST" && p == "/v3/auth/tokens")
        .count();
    assert_eq!(issued, 3, "token requests: {requests:?}");
    assert_not_leaked(&lab, &keystone.password, &[&stdout, &stderr]);
}

#[test]
fn a_wrong_os_password_fails_every_probe_with_401_and_never_shows() {
    let keystone = Keystone::start();
    let lab = lab(&keystone);
    lab.expect(&["provision"], 0);
    let wrong = format!(
        "wrong-{:016x}",
        RandomState::new().hash_one(std::process::id())
    );
    let mut monitor = lab.cmd(&["monitor", "--duration", "3s"]);
    for (k, v) in keystone.os_env(&wrong) {
        monitor.env(k, v);
    }
    let out = monitor.output().unwrap();
    eprintln!(
        "--- rollci monitor -> {:?}\n{}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // No downtime budget: the outage is evidence, not a failed check.
    assert_eq!(out.status.code(), Some(0));
    let file = probe_files(&lab).pop().expect("no monitor-*.jsonl");
    let all = records(&file);
    assert!(all.len() >= 2, "{} probes", all.len());
    for r in &all {
        assert_eq!(r["outcome"], "status", "{r}");
        assert_eq!(r["status"], 401, "{r}");
    }
    let service = &summary(&file)["services"][0];
    assert_eq!(service["availability"], 0.0, "{service}");
    assert_eq!(
        service["failures"]["status"].as_u64(),
        service["probes"].as_u64(),
        "{service}"
    );
    assert_not_leaked(&lab, &wrong, &[&out.stdout, &out.stderr]);
    // Keystone refused the password every time (no token was ever issued).
    let requests = keystone.rollci_requests();
    assert!(
        requests
            .iter()
            .all(|(m, p, s)| m == "POST" && p == "/v3/auth/tokens" && *s == 401),
        "{requests:?}"
    );
}

/// A persistent resource of the lab's own cloud: a Keystone project created with a token,
/// found again by the id captured from the create's answer, and deleted by cleanup.
#[test]
fn a_keystone_project_is_a_persistent_resource_found_by_its_captured_id() {
    let keystone = Keystone::start();
    let b = unique_block();
    let name = format!("rollci-persist-{}", std::process::id());
    let lab = Lab::with_text(&format!(
        r#"[lab]
name = "keystone-data"
from_release = "A"
to_release = "B"

[provider]
kind = "local"
nodes = 1
base_address = "{}.{}.{}.{}"

[upgrade]
mode = "all-at-once"
action = {{ name = "noop", command = ["true"] }}

[[persistent]]
name = "project"
auth = "openstack"
capture = {{ id = "/project/id" }}
create = {{ method = "POST", url = "http://127.0.0.1:{port}/v3/projects", body = '{{"project": {{"name": "{name}", "domain_id": "default"}}}}', expect_status = [201] }}
read = {{ url = "http://127.0.0.1:{port}/v3/projects/{{id}}" }}
delete = {{ method = "DELETE", url = "http://127.0.0.1:{port}/v3/projects/{{id}}", expect_status = [204] }}
json_pointer = "/project/name"
"#,
        b[0],
        b[1],
        b[2],
        b[3],
        port = keystone.port
    ));
    let env = keystone.os_env(&keystone.password);
    let run = |args: &[&str]| {
        let mut cmd = lab.cmd(args);
        for (k, v) in &env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        eprintln!(
            "--- rollci {args:?} -> {:?}\n{}{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(0), "rollci {args:?}");
        out
    };
    run(&["provision"]);
    let before = run(&["verify", "--phase", "before"]);
    let state = lab.state();
    let record = state["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "api-resource")
        .unwrap()
        .clone();
    let id = record["data"]["captured"]["id"]
        .as_str()
        .expect("the id is journaled")
        .to_string();
    assert!(
        record["data"]["delete"]["url"]
            .as_str()
            .unwrap()
            .ends_with(&id),
        "{record}"
    );
    let admin = keystone.token();
    let (status, _, body) =
        keystone.request("GET", &format!("/v3/projects/{id}"), Some(&admin), None);
    assert_eq!(status, 200);
    assert!(body.contains(&name), "{body}");
    run(&["verify", "--phase", "after"]);
    let persistent = lab.json("evidence/persistent.json");
    assert_eq!(persistent[0]["outcome"], "intact", "{persistent}");
    let cleanup = run(&["cleanup"]);
    let (status, _, _) = keystone.request("GET", &format!("/v3/projects/{id}"), Some(&admin), None);
    assert_eq!(status, 404, "cleanup deleted the project");
    assert_not_leaked(
        &lab,
        &keystone.password,
        &[&before.stdout, &before.stderr, &cleanup.stdout],
    );
}
