//! The `openstack` provider against real peers nobody here wrote: mimic (Rackspace's
//! OpenStack emulator: Keystone v2.0 and Nova, `tests/mimic/start`), a real Keystone v3
//! (`tests/keystone/start`) and, where mimic cannot serve a case, the Nova stand-in
//! `tests/fake_nova.py`. Labs use `reach = "none"`: nobody connects to the addresses mimic
//! invents. Each test has its own mimic (its state is in memory) and its own mimic user.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::lab::{Lab, ROOT};

/// A running mimic; `Drop` stops it (declare it before the lab: the lab's cleanup runs first).
pub struct Mimic {
    pub auth_url: String,
    dir: tempfile::TempDir,
}

impl Drop for Mimic {
    fn drop(&mut self) {
        let _ = std::process::Command::new(Path::new(ROOT).join("tests/mimic/stop"))
            .arg(self.dir.path())
            .status();
    }
}

impl Mimic {
    pub fn start() -> Mimic {
        let dir = tempfile::Builder::new()
            .prefix("rollci-mimic-")
            .tempdir()
            .unwrap();
        let out = std::process::Command::new(Path::new(ROOT).join("tests/mimic/start"))
            .arg(dir.path())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let mut mimic = Mimic {
            auth_url: String::new(),
            dir,
        };
        assert!(
            out.status.success(),
            "tests/mimic/start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let info: Value = serde_json::from_slice(&out.stdout).unwrap();
        mimic.auth_url = info["auth_url"].as_str().unwrap().to_string();
        mimic
    }

    /// A clouds.yaml entry `mimic` (Rackspace API key auth) in the lab's folder (rollci's
    /// working directory, the first place clouds.yaml is looked for).
    pub fn clouds_yaml(&self, lab: &Lab, user: &str, key: &str) {
        let text = format!(
            "clouds:\n  mimic:\n    auth_type: rackspace_apikey\n    auth:\n      auth_url: {}\n      \
             username: {user}\n      api_key: {key}\n    region_name: ORD\n    \
             compute_service_name: cloudServersOpenStack\n",
            self.auth_url
        );
        std::fs::write(lab.dir.path().join("clouds.yaml"), text).unwrap();
    }

    /// Compute of `user` in `region`, as the test itself sees it.
    pub fn compute(&self, user: &str, region: &str) -> String {
        let body =
            json!({"auth": {"RAX-KSKEY:apiKeyCredentials": {"username": user, "apiKey": "k"}}});
        let (_, answer) = request("POST", &format!("{}/tokens", self.auth_url), Some(&body));
        let catalog = answer["access"]["serviceCatalog"]
            .as_array()
            .unwrap()
            .clone();
        let nova = catalog
            .iter()
            .find(|s| s["name"] == "cloudServersOpenStack")
            .unwrap();
        let endpoint = nova["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["region"] == region)
            .unwrap();
        endpoint["publicURL"].as_str().unwrap().to_string()
    }

    /// The servers of `user` in `region` (`GET /servers/detail`).
    pub fn servers(&self, user: &str, region: &str) -> Vec<Value> {
        let (_, answer) = request(
            "GET",
            &format!("{}/servers/detail", self.compute(user, region)),
            None,
        );
        answer["servers"].as_array().unwrap().clone()
    }
}

/// A blocking JSON request from the test (loopback only).
pub fn request(method: &str, url: &str, body: Option<&Value>) -> (u16, Value) {
    let client = reqwest::blocking::Client::new();
    let mut req = client
        .request(method.parse().unwrap(), url)
        .header("X-Auth-Token", "test");
    if let Some(body) = body {
        req = req.json(body);
    }
    let response = req.send().unwrap();
    let status = response.status().as_u16();
    let text = response.text().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// A lab whose host is a server in `cloud`, reached by nobody.
pub fn lab_text(cloud: &str, provider_extra: &str, metadata: &str) -> String {
    format!(
        "[lab]\nname = \"cloudy\"\nfrom_release = \"A\"\nto_release = \"B\"\n\n\
         [provider]\nkind = \"openstack\"\ncloud = \"{cloud}\"\nreach = \"none\"\n\
         retry_delay = \"0s\"\n{provider_extra}\n\
         [provider.server]\nname = \"host\"\nflavor = \"512MB Standard Instance\"\n\
         image = \"Ubuntu 14.04 LTS (Trusty Tahr) (PVHVM)\"\nnetwork = \"public\"\n\
         groups = [\"hosts\"]\nmetadata = {{ {metadata} }}\n\n\
         [upgrade]\nmode = \"all-at-once\"\naction = {{ name = \"u\", command = [\"true\"] }}\n"
    )
}

fn of_run<'a>(servers: &'a [Value], run: &str) -> Vec<&'a Value> {
    servers
        .iter()
        .filter(|s| s["metadata"]["rollci_run"] == run)
        .collect()
}

fn servers_journaled(lab: &Lab) -> Vec<Value> {
    let state = lab.state();
    let all = state["resources"].as_array().unwrap();
    all.iter()
        .filter(|r| r["kind"] == "server")
        .cloned()
        .collect()
}

fn output(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A name of its own for each test, so mimic's per-user state keeps tests apart.
fn user(test: &str) -> String {
    format!("rollci-{test}-{}", std::process::id())
}

#[test]
fn a_server_is_created_tagged_waited_for_and_deleted_at_cleanup() {
    let mimic = Mimic::start();
    let lab = Lab::with_text(&lab_text("mimic", "", "server_building = \"2\""));
    let user = user("life");
    mimic.clouds_yaml(&lab, &user, "s3cr3t-api-key");
    let out = lab.expect(&["provision"], 0);
    let said = output(&out);
    assert!(
        said.contains("BUILD") && said.contains("ACTIVE at"),
        "{said}"
    );
    let run = lab.state()["run_id"].as_str().unwrap().to_string();
    let journaled = servers_journaled(&lab);
    assert_eq!(journaled.len(), 1, "{journaled:?}");
    assert_eq!(journaled[0]["status"], "created");
    let id = journaled[0]["data"]["id"].as_str().unwrap().to_string();
    // Tagged in mimic with the lab, run, role and expiry; in the clouds.yaml's region.
    let servers = mimic.servers(&user, "ORD");
    let ours = of_run(&servers, &run);
    assert_eq!(ours.len(), 1);
    assert_eq!(ours[0]["id"], id.as_str());
    assert_eq!(ours[0]["metadata"]["rollci_lab"], "cloudy");
    assert_eq!(ours[0]["metadata"]["rollci_role"], "host");
    assert!(
        ours[0]["metadata"]["rollci_expires"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    assert_eq!(ours[0]["name"], format!("rollci-{run}-host").to_lowercase());
    // The host of the lab is the server's public IPv4 address.
    let host = &lab.state()["hosts"][0];
    let public = ours[0]["addresses"]["public"].as_array().unwrap();
    let v4 = public.iter().find(|a| a["version"] == 4).unwrap();
    assert_eq!(host["address"], v4["addr"]);
    lab.expect(&["cleanup"], 0);
    assert!(of_run(&mimic.servers(&user, "ORD"), &run).is_empty());
    assert_eq!(servers_journaled(&lab)[0]["status"], "destroyed");
    // The API key went to mimic only.
    let everything = format!(
        "{said}{}",
        std::fs::read_to_string(lab.workspace().join("state.json")).unwrap()
    );
    assert!(!everything.contains("s3cr3t-api-key"));
    // (No `assert_nothing_left`: it would connect to the addresses mimic invents.)
}

#[test]
fn a_region_comes_from_the_flag_and_an_unknown_one_lists_those_there_are() {
    let mimic = Mimic::start();
    let lab = Lab::with_text(&lab_text("mimic", "", "server_building = \"0\""));
    let user = user("region");
    mimic.clouds_yaml(&lab, &user, "k");
    let out = lab.expect(&["--region", "LON", "provision"], 2);
    let said = output(&out);
    assert!(
        said.contains("region `LON`") && said.contains("regions there: DFW, IAD, ORD"),
        "{said}"
    );
    assert!(servers_journaled(&lab).is_empty());
    let out = lab
        .cmd(&["provision"])
        .env("ROLLCI_REGION", "IAD")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", output(&out));
    let run = lab.state()["run_id"].as_str().unwrap().to_string();
    assert_eq!(of_run(&mimic.servers(&user, "IAD"), &run).len(), 1);
    assert!(of_run(&mimic.servers(&user, "ORD"), &run).is_empty());
    assert_eq!(servers_journaled(&lab)[0]["data"]["region"], "IAD");
    // Cleanup uses the journaled region whatever the flags say now.
    lab.expect(&["--region", "DFW", "cleanup"], 0);
    assert!(of_run(&mimic.servers(&user, "IAD"), &run).is_empty());
}

#[test]
fn a_server_stuck_in_build_is_deleted_and_retried_until_the_attempts_are_spent() {
    let mimic = Mimic::start();
    let extra = "active_wait = \"3s\"\nattempts = 2\n";
    let lab = Lab::with_text(&lab_text("mimic", extra, "server_building = \"3600\""));
    let user = user("build");
    mimic.clouds_yaml(&lab, &user, "k");
    let out = lab.expect(&["provision"], 3);
    let said = output(&out);
    assert!(said.contains("was still BUILD after 3s"), "{said}");
    assert!(
        said.contains("attempt 1/2") && said.contains("attempt 2/2"),
        "{said}"
    );
    let journaled = servers_journaled(&lab);
    assert_eq!(journaled.len(), 2);
    assert!(
        journaled.iter().all(|r| r["status"] == "destroyed"),
        "{journaled:?}"
    );
    let run = lab.state()["run_id"].as_str().unwrap().to_string();
    assert!(of_run(&mimic.servers(&user, "ORD"), &run).is_empty());
    // Mimic has no console action: the evidence says so, with the (absent) fault.
    let logs = lab.workspace().join("logs").join(&run).join("openstack");
    let name = format!("rollci-{run}-host").to_lowercase();
    let console = std::fs::read_to_string(logs.join(format!("{name}.console.log"))).unwrap();
    assert!(console.contains("no console output"), "{console}");
    assert!(logs.join(format!("{name}.fault.txt")).exists());
}

#[test]
fn nova_refusals_a_500_is_retried_and_quota_is_not() {
    let mimic = Mimic::start();
    let failure = r#"create_server_failure = '{"code": 500, "message": "boom"}'"#;
    let lab = Lab::with_text(&lab_text("mimic", "attempts = 2\n", failure));
    let user = user("refuse");
    mimic.clouds_yaml(&lab, &user, "k");
    let said = output(&lab.expect(&["provision"], 3));
    assert!(
        said.contains("attempt 2/2") && said.contains("status 500"),
        "{said}"
    );
    assert_eq!(servers_journaled(&lab).len(), 2);

    let quota =
        r#"create_server_failure = '{"code": 403, "message": "Quota exceeded for instances"}'"#;
    let lab = Lab::with_text(&lab_text("mimic", "attempts = 3\n", quota));
    mimic.clouds_yaml(&lab, &user, "k");
    let said = output(&lab.expect(&["provision"], 3));
    assert!(
        said.contains("over quota") && said.contains("Quota exceeded"),
        "{said}"
    );
    assert_eq!(
        servers_journaled(&lab).len(),
        1,
        "quota must not be retried"
    );
    assert!(
        servers_journaled(&lab)
            .iter()
            .all(|r| r["status"] == "destroyed")
    );
}

#[test]
fn a_server_in_error_is_deleted_before_the_next_attempt() {
    let mimic = Mimic::start();
    let lab = Lab::with_text(&lab_text("mimic", "attempts = 2\n", "server_error = \"1\""));
    let user = user("error");
    mimic.clouds_yaml(&lab, &user, "k");
    let said = output(&lab.expect(&["provision"], 3));
    assert!(said.contains("went to ERROR"), "{said}");
    let run = lab.state()["run_id"].as_str().unwrap().to_string();
    assert!(of_run(&mimic.servers(&user, "ORD"), &run).is_empty());
    assert!(
        servers_journaled(&lab)
            .iter()
            .all(|r| r["status"] == "destroyed")
    );
}

/// Starts `provision`, waits until the server's id is journaled, and kills rollci (-9).
fn kill_while_building(lab: &Lab) -> String {
    let mut child = lab
        .std_cmd(&["provision"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(60);
    let id = loop {
        let state = std::fs::read_to_string(lab.workspace().join("state.json")).unwrap_or_default();
        let state: Value = serde_json::from_str(&state).unwrap_or(Value::Null);
        let record = state["resources"]
            .as_array()
            .and_then(|r| r.iter().find(|r| r["kind"] == "server").cloned());
        if let Some(id) = record.and_then(|r| r["data"]["id"].as_str().map(str::to_string)) {
            break id;
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("no server id journaled within 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    id
}

#[test]
fn killed_between_create_and_active_cleanup_deletes_the_server() {
    let mimic = Mimic::start();
    let lab = Lab::with_text(&lab_text("mimic", "", "server_building = \"600\""));
    let user = user("kill");
    mimic.clouds_yaml(&lab, &user, "k");
    let id = kill_while_building(&lab);
    let run = lab.state()["run_id"].as_str().unwrap().to_string();
    let building: Vec<Value> = of_run(&mimic.servers(&user, "ORD"), &run)
        .iter()
        .map(|s| s["status"].clone())
        .collect();
    assert_eq!(building, [json!("BUILD")]);
    assert_eq!(servers_journaled(&lab)[0]["status"], "creating");
    lab.expect(&["cleanup"], 0);
    assert!(
        of_run(&mimic.servers(&user, "ORD"), &run).is_empty(),
        "server {id} left"
    );
}

#[test]
fn a_server_whose_id_was_never_journaled_is_found_by_its_tag() {
    let mimic = Mimic::start();
    let lab = Lab::with_text(&lab_text("mimic", "", "server_building = \"600\""));
    let user = user("tag");
    mimic.clouds_yaml(&lab, &user, "k");
    kill_while_building(&lab);
    // As if rollci had been killed after Nova answered and before the id was saved.
    let path = lab.workspace().join("state.json");
    let mut state: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let run = state["run_id"].as_str().unwrap().to_string();
    for r in state["resources"].as_array_mut().unwrap() {
        if r["kind"] == "server" {
            r["data"]["id"] = Value::Null;
        }
    }
    std::fs::write(&path, serde_json::to_vec(&state).unwrap()).unwrap();
    assert_eq!(of_run(&mimic.servers(&user, "ORD"), &run).len(), 1);
    lab.expect(&["cleanup"], 0);
    assert!(of_run(&mimic.servers(&user, "ORD"), &run).is_empty());
}

#[test]
fn strays_deletes_only_what_it_saw_leaked_on_both_passes() {
    let mimic = Mimic::start();
    let lab = Lab::with_text(&lab_text("mimic", "", ""));
    let user = user("strays");
    mimic.clouds_yaml(&lab, &user, "k");
    let compute = mimic.compute(&user, "DFW");
    let create = |name: &str, meta: Value| {
        let body =
            json!({"server": {"name": name, "imageRef": "x", "flavorRef": "2", "metadata": meta}});
        let (status, answer) = request("POST", &format!("{compute}/servers"), Some(&body));
        assert_eq!(status, 202, "{answer}");
        answer["server"]["id"].as_str().unwrap().to_string()
    };
    let tag = |run: &str, expires: &str| json!({"rollci_run": run, "rollci_lab": "cloudy", "rollci_role": "host", "rollci_expires": expires});
    let expired = create("old", tag("r1", "2020-01-01T00:00:00Z"));
    let live = create("live", tag("r2", "2999-01-01T00:00:00Z"));
    let mut done = tag("r3", "2999-01-01T00:00:00Z");
    done["rollci_done"] = json!("2026-12-01T00:00:00Z");
    let done = create("done", done);
    let foreign = create("foreign", json!({"rollci_expires": "2020-01-01T00:00:00Z"}));
    // Listing only.
    let out = lab.expect(
        &[
            "strays",
            "--cloud",
            "mimic",
            "--region",
            "DFW",
            "--interval",
            "100ms",
        ],
        0,
    );
    let said = output(&out);
    assert!(
        said.contains(&expired)
            && said.contains(&done)
            && !said.contains(&live)
            && !said.contains(&foreign),
        "{said}"
    );
    assert_eq!(mimic.servers(&user, "DFW").len(), 4);
    // With --delete, and a server leaked between the two passes: kept until the next sweep.
    let child = lab
        .std_cmd(&[
            "strays",
            "--cloud",
            "mimic",
            "--region",
            "DFW",
            "--interval",
            "4s",
            "--delete",
            "--json",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let late = create("late", tag("r4", "2020-01-01T00:00:00Z"));
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let deleted: Vec<&str> = report
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["outcome"] == "deleted")
        .map(|l| l["id"].as_str().unwrap())
        .collect();
    assert_eq!(deleted.len(), 2, "{report}");
    assert!(deleted.contains(&expired.as_str()) && deleted.contains(&done.as_str()));
    let left: Vec<String> = mimic
        .servers(&user, "DFW")
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    assert!(
        left.contains(&live) && left.contains(&foreign) && left.contains(&late),
        "{left:?}"
    );
    assert_eq!(left.len(), 3);
}

/// The Nova stand-in (`tests/fake_nova.py`), validating tokens against a real Keystone and
/// registered in its catalog; `Drop` stops it.
pub struct FakeNova {
    child: std::process::Child,
    pub url: String,
    dump: tempfile::NamedTempFile,
}

impl Drop for FakeNova {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }
}

impl FakeNova {
    /// Starts it and registers it as `compute` in `regions` of `keystone`.
    pub fn start(keystone: &crate::keystone::Keystone, regions: &[&str]) -> FakeNova {
        use std::io::BufRead;
        let dump = tempfile::NamedTempFile::new().unwrap();
        let mut child = std::process::Command::new(Path::new(ROOT).join("tests/fake_nova.py"))
            .args([
                "--keystone",
                &keystone.auth_url,
                "--build-seconds",
                "1",
                "--dump",
            ])
            .arg(dump.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = serde_json::from_str::<Value>(&line).unwrap()["port"]
            .as_u64()
            .unwrap();
        let nova = FakeNova {
            child,
            url: format!("http://127.0.0.1:{port}/v2.1"),
            dump,
        };
        let info = json!({"auth_url": keystone.auth_url, "username": keystone.username,
            "password": keystone.password, "project": keystone.project});
        let mut args = vec!["register-compute".to_string(), nova.url.clone()];
        for region in regions {
            args.extend(["--region".to_string(), region.to_string()]);
        }
        let out = admin(&info, &args);
        assert!(out.contains("service_id"), "{out}");
        nova
    }

    /// What the stand-in saw: its servers (deleted ones too) and every request.
    pub fn dump(&self) -> Value {
        serde_json::from_str(&std::fs::read_to_string(self.dump.path()).unwrap()).unwrap()
    }
}

/// `tests/keystone/admin INFO ARGS…`: its stdout.
fn admin(info: &Value, args: &[String]) -> String {
    let out = std::process::Command::new(Path::new(ROOT).join("tests/keystone/admin"))
        .arg(info.to_string())
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "keystone/admin {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub fn v3_lab(cloud: &str, extra: &str, metadata: &str) -> String {
    lab_text(cloud, extra, metadata)
        .replace("512MB Standard Instance", "m1.tiny")
        .replace("Ubuntu 14.04 LTS (Trusty Tahr) (PVHVM)", "cirros")
        .replace("network = \"public\"\n", "")
}

/// The `lab-cloud` entry of the lab's clouds.yaml for `keystone`'s user, its password in
/// secure.yaml (as openstacksdk splits them).
pub fn keystone_clouds(lab: &Lab, keystone: &crate::keystone::Keystone) {
    let clouds = format!(
        "clouds:\n  lab-cloud:\n    auth:\n      auth_url: {}\n      username: {}\n      \
         project_name: {}\n      user_domain_name: Default\n      project_domain_name: Default\n",
        keystone.auth_url.trim_end_matches("/v3"),
        keystone.username,
        keystone.project
    );
    std::fs::write(lab.dir.path().join("clouds.yaml"), clouds).unwrap();
    let secure = format!(
        "clouds:\n  lab-cloud:\n    auth:\n      password: {}\n",
        keystone.password
    );
    std::fs::write(lab.dir.path().join("secure.yaml"), secure).unwrap();
}

#[test]
fn keystone_v3_password_from_clouds_yaml_with_a_region_of_the_catalog() {
    let keystone = crate::keystone::Keystone::start();
    let nova = FakeNova::start(&keystone, &["RegionOne", "RegionTwo"]);
    let lab = Lab::with_text(&v3_lab("lab-cloud", "", ""));
    keystone_clouds(&lab, &keystone);
    // Two regions and none chosen: the error names both.
    let said = output(&lab.expect(&["provision"], 2));
    assert!(
        said.contains("several regions") && said.contains("RegionOne, RegionTwo"),
        "{said}"
    );
    let said = output(&lab.expect(&["--region", "RegionThree", "provision"], 2));
    assert!(
        said.contains("regions there: RegionOne, RegionTwo"),
        "{said}"
    );
    let said = output(&lab.expect(&["--region", "RegionTwo", "provision"], 0));
    let servers = nova.dump()["servers"].as_array().unwrap().clone();
    assert_eq!(servers.len(), 1);
    assert_eq!(servers[0]["status"], "ACTIVE");
    assert_eq!(
        lab.state()["hosts"][0]["address"],
        servers[0]["addresses"]["private"][0]["addr"]
    );
    lab.expect(&["cleanup"], 0);
    let dump = nova.dump();
    assert_eq!(dump["servers"][0]["deleted"], true);
    let requests = dump["requests"].as_array().unwrap();
    assert!(
        requests.iter().all(|r| r["status"] != 401),
        "every request had a valid token"
    );
    assert!(
        requests
            .iter()
            .any(|r| r["method"] == "DELETE" && r["status"] == 204)
    );
    let state = std::fs::read_to_string(lab.workspace().join("state.json")).unwrap();
    assert!(!said.contains(&keystone.password) && !state.contains(&keystone.password));
}

#[test]
fn keystone_v3_application_credentials_a_slow_refused_delete_and_no_valid_host() {
    let keystone = crate::keystone::Keystone::start();
    let nova = FakeNova::start(&keystone, &["RegionOne"]);
    let info = json!({"auth_url": keystone.auth_url, "username": keystone.username,
        "password": keystone.password, "project": keystone.project});
    let credential: Value = serde_json::from_str(&admin(
        &info,
        &["app-credential".into(), "rollci-it".into()],
    ))
    .unwrap();
    let secret = credential["secret"].as_str().unwrap().to_string();
    let env = [
        ("OS_AUTH_URL", keystone.auth_url.clone()),
        ("OS_AUTH_TYPE", "v3applicationcredential".to_string()),
        (
            "OS_APPLICATION_CREDENTIAL_ID",
            credential["id"].as_str().unwrap().to_string(),
        ),
        ("OS_APPLICATION_CREDENTIAL_SECRET", secret.clone()),
    ];
    let slow = "fake_delete_seconds = \"3\", fake_delete_409_times = \"2\"";
    let lab = Lab::with_text(&v3_lab("x", "", slow).replace("cloud = \"x\"\n", ""));
    let run = |args: &[&str]| {
        let mut cmd = lab.cmd(args);
        for (k, v) in &env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    let out = run(&["provision"]);
    assert_eq!(out.status.code(), Some(0), "{}", output(&out));
    let out = run(&["cleanup"]);
    assert_eq!(out.status.code(), Some(0), "{}", output(&out));
    let dump = nova.dump();
    let server = &dump["servers"][0];
    assert_eq!(
        server["deleted"], true,
        "cleanup returned before the server was gone"
    );
    let deletes = dump["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["method"] == "DELETE")
        .count();
    assert_eq!(deletes, 3, "two 409s, then the accepted delete");
    assert!(!output(&out).contains(&secret));

    let hopeless = Lab::with_text(
        &v3_lab("x", "attempts = 3\n", "fake_no_valid_host = \"1\"").replace("cloud = \"x\"\n", ""),
    );
    let mut cmd = hopeless.cmd(&["provision"]);
    for (k, v) in &env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", output(&out));
    assert!(
        output(&out).contains("No valid host was found"),
        "{}",
        output(&out)
    );
    let journaled = servers_journaled(&hopeless);
    assert_eq!(journaled.len(), 1, "no valid host must not be retried");
    assert_eq!(journaled[0]["status"], "destroyed");
    let console = std::fs::read_dir(hopeless.workspace().join("logs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let text: String = std::fs::read_dir(console.join("openstack"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    // The fault, and why there is no console (Nova answers 409 for a server in ERROR).
    assert!(
        text.contains("No valid host") && text.contains("is not ready"),
        "fault and console kept: {text}"
    );
}

/// The shipped multi-node lab (`examples/osa-onmetal/`), its first steps against mimic: the
/// Rackspace cloud of its clouds.yaml entry, the OnMetal flavor and image by name in its
/// IAD region, the server tagged and ACTIVE; then cleanup. Up to the point where a real host
/// would be needed: rollci never connects to the address mimic invents (`reach = "none"`).
#[test]
fn the_osa_onmetal_lab_rents_its_server_from_mimic_and_cleanup_deletes_it() {
    let mimic = Mimic::start();
    let example = Path::new(ROOT).join("examples/osa-onmetal");
    let text = std::fs::read_to_string(example.join("rollci.toml")).unwrap();
    let patched = text
        .replace("reach = \"ssh\"", "reach = \"none\"")
        .replace("tunnel = true", "tunnel = false");
    assert_ne!(patched, text, "the lab reaches its server over ssh");
    let lab = Lab::with_text(&patched);
    let user = user("osa");
    let clouds = format!(
        "clouds:\n  rackspace:\n    auth_type: rackspace_apikey\n    auth:\n      auth_url: {}\n      \
         username: {user}\n      api_key: k\n",
        mimic.auth_url
    );
    std::fs::write(lab.dir.path().join("clouds.yaml"), clouds).unwrap();
    let said = output(&lab.expect(&["provision", "--acquire-only"], 0));
    assert!(said.contains("ACTIVE at"), "{said}");
    let run = lab.state()["run_id"].as_str().unwrap().to_string();
    let servers = mimic.servers(&user, "IAD");
    let ours = of_run(&servers, &run);
    assert_eq!(ours.len(), 1, "{servers:?}");
    assert_eq!(ours[0]["metadata"]["rollci_lab"], "osa-onmetal");
    assert_eq!(ours[0]["metadata"]["purpose"], "rollci-osa-onmetal");
    assert_eq!(ours[0]["flavor"]["id"], "onmetal-io1");
    assert_eq!(lab.state()["hosts"][0]["name"], "infra-host");
    let said = output(&lab.expect(&["cleanup"], 0));
    // Its `[logs]` are not fetched from the address mimic invented.
    assert!(said.contains("`[logs]` not fetched"), "{said}");
    assert!(of_run(&mimic.servers(&user, "IAD"), &run).is_empty());
}
