//! The `libvirt` provider with a real guest: libvirtd (started by `tests/libvirt/start` when
//! none answers, stopped again by the test that started it), QEMU under TCG, the Debian image
//! of `scripts/guest-image` (cached by content; `make test-deps` builds it). The guest's ssh
//! port is forwarded to a loopback address of the test's own; it has no other network.
//!
//! Checked: a playbook really runs over ssh in the guest, a data-plane probe reads its ssh
//! banner through an upgrade, and cleanup leaves no domain, overlay, qemu process or ssh
//! master, also after `kill -9` of rollci in the middle of provisioning.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::lab::{Lab, ROOT, unique_block};

/// One libvirt test at a time: they share the machine's libvirtd and its CPU.
pub static LIBVIRT: Mutex<()> = Mutex::new(());

/// libvirtd for one test: started when none answers, stopped on drop if this started it.
pub struct Daemon {
    state: tempfile::NamedTempFile,
}

impl Daemon {
    pub fn start() -> Daemon {
        let state = tempfile::NamedTempFile::new().unwrap();
        let out = Command::new(Path::new(ROOT).join("tests/libvirt/start"))
            .arg(state.path())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let daemon = Daemon { state };
        assert!(
            out.status.success(),
            "tests/libvirt/start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        daemon
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new(Path::new(ROOT).join("tests/libvirt/stop"))
            .arg(self.state.path())
            .status();
    }
}

fn virsh(args: &[&str]) -> String {
    let out = Command::new("virsh")
        .args(["-c", "qemu:///system"])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn domains_of(run: &str) -> Vec<String> {
    let names = virsh(&["list", "--all", "--name"]);
    let prefix = format!("rollci-{run}-");
    let ours = names
        .lines()
        .map(str::trim)
        .filter(|n| n.starts_with(&prefix));
    ours.map(String::from).collect()
}

/// The libvirt networks of `run` (isolated ones: no address on this machine).
pub fn networks_of(run: &str) -> Vec<String> {
    let names = virsh(&["net-list", "--all", "--name"]);
    let prefix = format!("rollci-{run}-");
    let ours = names
        .lines()
        .map(str::trim)
        .filter(|n| n.starts_with(&prefix));
    ours.map(String::from).collect()
}

/// QEMU processes whose command line names a domain of `run`.
pub fn qemus_of(run: &str) -> Vec<u32> {
    let needle = format!("rollci-{run}-");
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline);
        if cmdline.contains("qemu-system") && cmdline.contains(&needle) {
            pids.push(pid);
        }
    }
    pids
}

/// A lab of one guest whose deploy and upgrade write the release into the guest over ssh;
/// its ssh port is also the host's `{guest1}`, probed with the `tcp` kind once a second:
/// every probe costs an emulated sshd a fork and exec, and ten a second starved Ansible's
/// own connection (banner exchange timed out) under TCG.
pub fn lab() -> Lab {
    lab_upgraded_by("write.yml", "")
}

/// The same lab, its upgrade done by `playbook` (`write.yml` or `sleep.yml`), with more of
/// the lab file after it.
fn lab_upgraded_by(playbook: &str, extra: &str) -> Lab {
    let [a, b, c, d] = unique_block();
    let action = |name: &str| {
        let playbook = if name == "upgrade" {
            playbook
        } else {
            "write.yml"
        };
        format!("{{ name = \"{name}\", playbook = \"{playbook}\", timeout = \"5m\" }}")
    };
    let lab = Lab::with_text(&format!(
        "[lab]\nname = \"vm1\"\nfrom_release = \"A\"\nto_release = \"B\"\n\n\
         [provider]\nkind = \"libvirt\"\nimage = {{ command = [\"{root}/scripts/guest-image\"] }}\n\
         address = \"{a}.{b}.{c}.{d}\"\nwait = \"8m\"\n\n\
         [[provider.networks]]\nname = \"mgmt\"\n\n\
         [[provider.vms]]\nname = \"guest1\"\ngroups = [\"nodes\"]\nport = 22\nnetworks = [\"mgmt\"]\n\n\
         [deploy]\nactions = [{}]\n\n[upgrade]\nmode = \"all-at-once\"\naction = {}\n\n\
         [probing]\nbaseline = \"500ms\"\n\n\
         [[probes]]\nname = \"guest-ssh\"\nkind = \"tcp\"\nurl = \"tcp://{{guest1}}\"\n\
         banner = \"SSH-2.0\"\ninterval = \"1s\"\ntimeout = \"10s\"\nmax_downtime = \"0ms\"\n{extra}",
        action("deploy"),
        action("upgrade"),
        root = ROOT,
    ));
    std::fs::write(
        lab.workspace().parent().unwrap().join("write.yml"),
        "- hosts: nodes\n  gather_facts: false\n  tasks:\n    - ansible.builtin.copy:\n        dest: /root/release\n        content: \"{{ rollci_release }}\"\n    - ansible.builtin.lineinfile:\n        path: /var/log/rollci-it/release.log\n        line: \"{{ rollci_step }} {{ rollci_release }}\"\n        create: true\n",
    )
    .unwrap();
    std::fs::write(
        lab.workspace().parent().unwrap().join("sleep.yml"),
        "- hosts: nodes\n  gather_facts: false\n  tasks:\n    - ansible.builtin.command: sleep 300\n",
    )
    .unwrap();
    lab
}

/// `ssh -F <run's config> guest1 ARGV` through the run's master.
fn in_guest(lab: &Lab, argv: &[&str]) -> String {
    let out = ssh_guest(lab, argv);
    assert!(out.status.success(), "ssh guest1 {argv:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ssh_guest(lab: &Lab, argv: &[&str]) -> std::process::Output {
    Command::new("ssh")
        .arg("-F")
        .arg(lab.workspace().join("ssh/config"))
        .arg("guest1")
        .arg("--")
        .args(argv)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Whether the run's ssh master to guest1 is up.
fn master_up(lab: &Lab) -> bool {
    Command::new("ssh")
        .arg("-F")
        .arg(lab.workspace().join("ssh/config"))
        .args(["-O", "check", "guest1"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub fn overlays(lab: &Lab) -> Vec<PathBuf> {
    let dir = lab.workspace().join("lab/disks");
    let files = std::fs::read_dir(dir).into_iter().flatten().flatten();
    files.map(|e| e.path()).collect()
}

fn run_id(lab: &Lab) -> String {
    lab.state()["run_id"].as_str().unwrap().to_string()
}

#[test]
fn a_real_guest_boots_runs_playbooks_over_ssh_and_cleanup_leaves_nothing() {
    let _one = LIBVIRT.lock().unwrap_or_else(|e| e.into_inner());
    let _daemon = Daemon::start();
    // The guest's logs are fetched before it goes (a folder that is not there is said).
    let lab = lab_upgraded_by(
        "write.yml",
        "\n[logs]\nfolders = [\"/var/log/rollci-it\", \"/nonexistent\"]\n",
    );
    lab.expect(&["provision"], 0);
    let run = run_id(&lab);
    let domain = format!("rollci-{run}-guest1");
    assert_eq!(domains_of(&run), vec![domain.clone()]);
    let tag = virsh(&["metadata", &domain, "https://rollci.dev/xmlns/libvirt/1"]);
    assert!(
        tag.contains("lab=\"vm1\"") && tag.contains(&format!("run=\"{run}\"")),
        "{tag}"
    );
    assert_eq!(in_guest(&lab, &["hostname"]).trim(), "guest1");
    // Its second card is on the lab's isolated network.
    assert_eq!(networks_of(&run), vec![format!("rollci-{run}-mgmt")]);
    let cards = virsh(&["domiflist", &domain]);
    assert!(cards.contains(&format!("rollci-{run}-mgmt")), "{cards}");
    let links = in_guest(&lab, &["ls", "/sys/class/net"]);
    assert_eq!(
        links.split_whitespace().filter(|l| *l != "lo").count(),
        2,
        "{links}"
    );

    lab.expect(&["deploy"], 0);
    assert_eq!(in_guest(&lab, &["cat", "/root/release"]), "A");
    lab.expect(&["upgrade"], 0);
    assert_eq!(in_guest(&lab, &["cat", "/root/release"]), "B");
    let availability = lab.json("evidence/availability.json");
    let ssh = &availability["services"][0];
    assert_eq!(ssh["name"], "guest-ssh");
    assert!(ssh["probes"].as_u64().unwrap() > 0, "{ssh}");
    assert_eq!(ssh["downtime_ms"], 0, "{ssh}");

    lab.expect(&["cleanup"], 0);
    let kept = lab.workspace().join("logs").join(&run);
    let log = std::fs::read_to_string(kept.join("lab/guest1/var/log/rollci-it/release.log"));
    assert_eq!(
        log.unwrap(),
        "deploy A\nupgrade B\n",
        "the guest's log, kept"
    );
    assert_eq!(domains_of(&run), Vec::<String>::new());
    assert_eq!(networks_of(&run), Vec::<String>::new());
    assert_eq!(qemus_of(&run), Vec::<u32>::new());
    assert_eq!(overlays(&lab), Vec::<PathBuf>::new());
    let state = lab.state();
    for r in state["resources"].as_array().unwrap() {
        assert_eq!(r["status"], "destroyed", "{r}");
    }
    // A second cleanup finds everything gone and says so.
    lab.expect(&["cleanup"], 0);
}

#[test]
fn kill_9_in_the_middle_of_provisioning_then_cleanup_leaves_no_domain_or_disk() {
    let _one = LIBVIRT.lock().unwrap_or_else(|e| e.into_inner());
    let _daemon = Daemon::start();
    let lab = lab();
    let mut provision = lab
        .std_cmd(&["provision"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The moment: the domain is defined (and the guest booting), ssh not yet answering.
    let deadline = Instant::now() + Duration::from_secs(300);
    let run = loop {
        assert!(Instant::now() < deadline, "no domain after 300s");
        assert!(
            provision.try_wait().unwrap().is_none(),
            "provision ended early"
        );
        let state = std::fs::read_to_string(lab.workspace().join("state.json"));
        let run = state.ok().and_then(|s| {
            let v: serde_json::Value = serde_json::from_str(&s).ok()?;
            Some(v["run_id"].as_str()?.to_string())
        });
        if let Some(run) = run
            && !domains_of(&run).is_empty()
        {
            break run;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    provision.kill().unwrap();
    provision.wait().unwrap();
    assert_eq!(domains_of(&run).len(), 1);

    lab.expect(&["cleanup"], 0);
    assert_eq!(domains_of(&run), Vec::<String>::new());
    assert_eq!(networks_of(&run), Vec::<String>::new());
    assert_eq!(qemus_of(&run), Vec::<u32>::new());
    assert_eq!(overlays(&lab), Vec::<PathBuf>::new());
}

#[test]
fn kill_9_in_the_middle_of_the_upgrade_then_cleanup_leaves_no_domain_or_master() {
    let _one = LIBVIRT.lock().unwrap_or_else(|e| e.into_inner());
    let _daemon = Daemon::start();
    let lab = lab_upgraded_by("sleep.yml", "");
    lab.expect(&["provision"], 0);
    let run = run_id(&lab);
    assert!(master_up(&lab));
    let mut upgrade = lab
        .std_cmd(&["upgrade"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The moment: the upgrade's playbook is running in the guest.
    let deadline = Instant::now() + Duration::from_secs(300);
    while !ssh_guest(&lab, &["pgrep", "-x", "sleep"]).status.success() {
        assert!(
            Instant::now() < deadline,
            "the upgrade never reached the guest"
        );
        assert!(upgrade.try_wait().unwrap().is_none(), "upgrade ended early");
        std::thread::sleep(Duration::from_millis(500));
    }
    upgrade.kill().unwrap();
    upgrade.wait().unwrap();

    lab.expect(&["cleanup"], 0);
    assert_eq!(domains_of(&run), Vec::<String>::new());
    assert_eq!(qemus_of(&run), Vec::<u32>::new());
    assert_eq!(overlays(&lab), Vec::<PathBuf>::new());
    assert!(!master_up(&lab), "cleanup stopped the ssh master");
    let upgrade = lab.status()["summary"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "upgrade")
        .cloned()
        .unwrap();
    assert_eq!(upgrade["outcome"], "interrupted", "{upgrade}");
}

/// A lab of one guest on a parent host: this machine reached over a real sshd on a loopback
/// address of the test's own, as a rented server would be. virsh goes `qemu+ssh://` through
/// the run's ssh_config, disks and the image cache live in the parent's `remote_dir`,
/// Ansible reaches the guest with `ProxyJump`, and the probes go through the SOCKS tunnel.
fn parent_lab(sshd: &crate::ssh_hosts::Sshd, remote: &Path) -> Lab {
    let action =
        |name: &str| format!("{{ name = \"{name}\", playbook = \"write.yml\", timeout = \"5m\" }}");
    let lab = Lab::with_text(&format!(
        "[lab]\nname = \"vm-parent\"\nfrom_release = \"A\"\nto_release = \"B\"\n\n\
         [provider]\nkind = \"libvirt\"\nimage = {{ command = [\"{root}/scripts/guest-image\"] }}\n\
         wait = \"8m\"\nremote_dir = \"{remote}\"\ntunnel = true\n\
         parent = {{ name = \"hv\", address = \"{addr}\", port = {port}, user = \"root\", key = \"{key}\", groups = [\"hypervisors\"] }}\n\n\
         [[provider.vms]]\nname = \"guest1\"\ngroups = [\"nodes\"]\nport = 22\n\n\
         [deploy]\nactions = [{}]\n\n[upgrade]\nmode = \"all-at-once\"\naction = {}\n\n\
         [probing]\nbaseline = \"500ms\"\n\n\
         [[probes]]\nname = \"guest-ssh\"\nkind = \"tcp\"\nurl = \"tcp://{{guest1}}\"\n\
         banner = \"SSH-2.0\"\ninterval = \"1s\"\ntimeout = \"10s\"\nmax_downtime = \"0ms\"\n",
        action("deploy"),
        action("upgrade"),
        root = ROOT,
        remote = remote.display(),
        addr = sshd.address,
        port = sshd.port,
        key = sshd.dir.join("user_key").display(),
    ));
    std::fs::write(
        lab.dir.path().join("write.yml"),
        "- hosts: nodes\n  gather_facts: false\n  tasks:\n    - ansible.builtin.copy:\n        dest: /root/release\n        content: \"{{ rollci_release }}\"\n    - ansible.builtin.lineinfile:\n        path: /var/log/rollci-it/release.log\n        line: \"{{ rollci_step }} {{ rollci_release }}\"\n        create: true\n",
    )
    .unwrap();
    lab
}

#[test]
fn guests_on_a_parent_host_over_ssh_are_built_reached_through_it_and_removed() {
    let _one = LIBVIRT.lock().unwrap_or_else(|e| e.into_inner());
    let _daemon = Daemon::start();
    let host = tempfile::Builder::new()
        .prefix("rollci-parent-")
        .tempdir()
        .unwrap();
    let sshd = crate::ssh_hosts::Sshd::start(host.path());
    let remote = host.path().join("remote");
    let lab = parent_lab(&sshd, &remote);
    lab.expect(&["provision"], 0);
    let run = run_id(&lab);
    let domain = format!("rollci-{run}-guest1");
    assert_eq!(domains_of(&run), vec![domain.clone()]);
    // Built through the parent: its URI, its disk folder, the image copied into its cache.
    let state = lab.state();
    let resources = state["resources"].as_array().unwrap();
    let record = resources.iter().find(|r| r["kind"] == "domain").unwrap();
    assert!(
        record["data"]["uri"]
            .as_str()
            .unwrap()
            .starts_with("qemu+ssh://hv/system?"),
        "{record}"
    );
    let disk = remote
        .join("runs")
        .join(&run)
        .join(format!("{domain}.qcow2"));
    assert!(disk.is_file(), "no overlay at {}", disk.display());
    let cached: Vec<_> = std::fs::read_dir(remote.join("images"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(cached.len(), 1);
    assert!(cached[0].path().join("base.qcow2").is_file());
    let config = std::fs::read_to_string(lab.workspace().join("ssh/config")).unwrap();
    assert!(
        config.contains("Host guest1\n  HostName 127.0.0.1\n")
            && config.contains("  ProxyJump hv\n"),
        "{config}"
    );
    assert_eq!(in_guest(&lab, &["hostname"]).trim(), "guest1");

    lab.expect(&["deploy"], 0);
    assert_eq!(in_guest(&lab, &["cat", "/root/release"]), "A");
    lab.expect(&["upgrade"], 0);
    assert_eq!(in_guest(&lab, &["cat", "/root/release"]), "B");
    let availability = lab.json("evidence/availability.json");
    let probe = &availability["services"][0];
    assert!(
        probe["probes"].as_u64().unwrap() > 0 && probe["downtime_ms"] == 0,
        "{probe}"
    );

    lab.expect(&["cleanup"], 0);
    assert_eq!(domains_of(&run), Vec::<String>::new());
    assert_eq!(qemus_of(&run), Vec::<u32>::new());
    assert!(
        !remote.join("runs").join(&run).exists(),
        "the run's folder on the parent is gone"
    );
    for r in lab.state()["resources"].as_array().unwrap() {
        assert_eq!(r["status"], "destroyed", "{r}");
    }
    let masters = Command::new("ssh")
        .arg("-F")
        .arg(lab.workspace().join("ssh/config"))
        .args(["-O", "check", "hv"])
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(!masters.success(), "cleanup stopped the parent's master");
}
