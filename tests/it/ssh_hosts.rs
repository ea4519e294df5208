//! The `static` provider against a real `sshd` (Debian's openssh-server) on a loopback
//! address of its own: the run's ssh_config and known_hosts, a playbook really run over
//! ssh, masters stopped by cleanup, and a host whose key changed refused by name.

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::lab::{Lab, unique_block};

/// A real sshd for one test, on its own address and port, with its own host key and one
/// authorized user key (root's: these tests run as root, as CI does).
pub struct Sshd {
    pub dir: PathBuf,
    pub address: Ipv4Addr,
    pub port: u16,
    child: Option<Child>,
}

impl Sshd {
    pub fn start(dir: &Path) -> Sshd {
        let [a, b, c, d] = unique_block();
        let address = Ipv4Addr::new(a, b, c, d + 1);
        let port = TcpListener::bind(SocketAddrV4::new(address, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = dir.join("sshd");
        std::fs::create_dir_all(&dir).unwrap();
        // Debian's sshd wants its privilege separation folder (its package makes it at boot).
        std::fs::create_dir_all("/run/sshd").unwrap();
        keygen(&dir.join("user_key"));
        std::fs::copy(dir.join("user_key.pub"), dir.join("authorized_keys")).unwrap();
        let mut sshd = Sshd {
            dir,
            address,
            port,
            child: None,
        };
        sshd.run_with_new_host_key();
        sshd
    }

    /// (Re)starts sshd with a freshly generated host key.
    fn run_with_new_host_key(&mut self) {
        self.stop();
        let _ = std::fs::remove_file(self.dir.join("host_key"));
        keygen(&self.dir.join("host_key"));
        let config = format!(
            "Port {}\nListenAddress {}\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n\
             AuthorizedKeysFile {d}/authorized_keys\nPermitRootLogin prohibit-password\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
             StrictModes no\nPrintMotd no\nLogLevel ERROR\n",
            self.port,
            self.address,
            d = self.dir.display()
        );
        std::fs::write(self.dir.join("sshd_config"), config).unwrap();
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(self.dir.join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.join("sshd.log")).unwrap())
            .spawn()
            .expect("sshd (hint: apt-get install -y openssh-server)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        let addr = SocketAddrV4::new(self.address, self.port).into();
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(Instant::now() < deadline, "sshd did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The remote side failing: sshd and every session under it killed at once (SIGKILL),
    /// so every connection drops mid-command. What the sessions ran gets SIGTERM, the way
    /// a host's processes lose their session, not SIGKILL: a shell killed outright would
    /// leave what it holds behind (root's `.bashrc` runs `pyenv rehash`, whose lock file,
    /// left, makes every later ssh login here wait 60 s), then SIGKILL after 5 s.
    pub fn kill_with_sessions(&mut self) {
        let Some(root) = self.child.as_ref().map(|c| c.id()) else {
            return;
        };
        let mut tree = vec![root];
        let mut i = 0;
        while i < tree.len() {
            tree.extend(children_of(tree[i]));
            i += 1;
        }
        let is_sshd = |pid: &u32| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "sshd")
        };
        let (sshd, rest): (Vec<u32>, Vec<u32>) = tree.into_iter().partition(is_sshd);
        let signal = |pids: &[u32], signal| {
            for pid in pids {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(*pid as i32), signal);
            }
        };
        signal(&sshd, nix::sys::signal::Signal::SIGKILL);
        signal(&rest, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while rest
            .iter()
            .any(|p| Path::new(&format!("/proc/{p}")).exists())
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        signal(&rest, nix::sys::signal::Signal::SIGKILL);
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn host_key(&self) -> String {
        let public = std::fs::read_to_string(self.dir.join("host_key.pub")).unwrap();
        public.split_whitespace().nth(1).unwrap().to_string()
    }

    /// A static lab of this one host whose deploy and upgrade write the release, over ssh,
    /// into `marker`.
    fn lab(&self, marker: &Path) -> Lab {
        self.lab_with(marker, "")
    }

    /// [`Sshd::lab`] with more of the lab file after it.
    fn lab_with(&self, marker: &Path, extra: &str) -> Lab {
        let playbook = self.dir.join("write.yml");
        std::fs::write(
            &playbook,
            "- hosts: nodes\n  gather_facts: false\n  tasks:\n    - ansible.builtin.copy:\n        dest: \"{{ marker }}\"\n        content: \"{{ rollci_release }}\"\n",
        )
        .unwrap();
        let action = |name: &str| {
            format!(
                "{{ name = \"{name}\", playbook = \"{}\", extra_vars = {{ marker = \"{}\" }}, timeout = \"3m\" }}",
                playbook.display(),
                marker.display()
            )
        };
        Lab::with_text(&format!(
            "[lab]\nname = \"ssh\"\nfrom_release = \"A\"\nto_release = \"B\"\n\n\
             [provider]\nkind = \"static\"\nwait = \"60s\"\n\n\
             [[provider.hosts]]\nname = \"h1\"\naddress = \"{}\"\nport = {}\nuser = \"root\"\n\
             key = \"{}\"\ngroups = [\"nodes\"]\n\n\
             [deploy]\nactions = [{}]\n\n[upgrade]\nmode = \"all-at-once\"\naction = {}\n\n\
             [probing]\nbaseline = \"500ms\"\n\n\
             [[probes]]\nname = \"ssh\"\nkind = \"tcp\"\nurl = \"tcp://{{h1}}\"\nbanner = \"SSH-2.0\"\n\
             interval = \"100ms\"\ntimeout = \"5s\"\nmax_downtime = \"0ms\"\n{}",
            self.address,
            self.port,
            self.dir.join("user_key").display(),
            action("deploy"),
            action("upgrade"),
            extra
        ))
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The pids whose parent is `pid` (from /proc).
fn children_of(pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        if rest.split_whitespace().nth(1) == Some(&pid.to_string()) {
            found.extend(
                entry
                    .file_name()
                    .to_str()
                    .and_then(|p| p.parse::<u32>().ok()),
            );
        }
    }
    found
}

pub fn keygen(path: &Path) {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "ssh-keygen: {out:?}");
}

/// Whether the run's master to `host` is up (asked through the run's own ssh_config).
fn master_up(lab: &Lab, host: &str) -> bool {
    let config = lab.workspace().join("ssh/config");
    Command::new("ssh")
        .arg("-F")
        .arg(&config)
        .args(["-O", "check", host])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn a_playbook_runs_over_ssh_with_the_runs_own_config_and_cleanup_stops_the_master() {
    let tmp = tempfile::tempdir().unwrap();
    let sshd = Sshd::start(tmp.path());
    let marker = tmp.path().join("release");
    let lab = sshd.lab(&marker);
    lab.expect(&["provision"], 0);
    let known = std::fs::read_to_string(lab.workspace().join("ssh/known_hosts")).unwrap();
    assert!(
        known.contains(&sshd.host_key()),
        "the host key is learned: {known}"
    );
    assert!(
        master_up(&lab, "h1"),
        "provision leaves a master for the steps"
    );
    let inventory = String::from_utf8(lab.expect(&["inventory"], 0).stdout).unwrap();
    assert!(
        inventory.contains("ansible_connection: \"ssh\""),
        "{inventory}"
    );
    assert!(inventory.contains("ansible_host: \"h1\""), "{inventory}");
    lab.expect(&["deploy"], 0);
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "A");
    lab.expect(&["upgrade"], 0);
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "B");
    // The data-plane probe read sshd's banner through the whole upgrade.
    let availability = lab.json("evidence/availability.json");
    let ssh = &availability["services"][0];
    assert_eq!(ssh["name"], "ssh");
    assert!(ssh["probes"].as_u64().unwrap() > 0, "{ssh}");
    assert_eq!(ssh["downtime_ms"], 0, "{ssh}");
    let out = lab.expect(&["cleanup"], 0);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("2 destroyed"),
        "the master and the host released"
    );
    assert!(!master_up(&lab, "h1"), "cleanup stopped the master");
    let state = lab.state();
    let masters: Vec<_> = state["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "ssh-master")
        .collect();
    assert_eq!(masters.len(), 1);
    assert_eq!(masters[0]["status"], "destroyed");
}

/// The host's `[logs]` folders are fetched over ssh before cleanup releases the host:
/// nested log files whole and byte for byte (templating syntax included), a large one by
/// its end, other names and links left.
#[test]
fn cleanup_keeps_the_hosts_logs_over_ssh_first() {
    let tmp = tempfile::tempdir().unwrap();
    let sshd = Sshd::start(tmp.path());
    let folder = tmp.path().join("host-logs");
    std::fs::create_dir_all(folder.join("app")).unwrap();
    let app = "started\n{{ lookup('pipe', 'id') }} $(id) `id`\n\u{e9}t\u{e9}\n";
    std::fs::write(folder.join("app/app.log"), app).unwrap();
    let big: String = (0..40_000)
        .map(|i| format!("line {i:06} {}\n", "x".repeat(40)))
        .collect();
    std::fs::write(folder.join("big.log"), &big).unwrap();
    std::fs::write(folder.join("notes.txt"), "not a log").unwrap();
    std::os::unix::fs::symlink("/etc/hostname", folder.join("link.log")).unwrap();
    let lab = sshd.lab_with(
        &tmp.path().join("release"),
        &format!(
            "\n[logs]\nfolders = [\"{}\", \"/nonexistent-rollci-logs\"]\nmax_file_mib = 1\n",
            folder.display()
        ),
    );
    lab.expect(&["provision"], 0);
    lab.expect(&["deploy"], 0);
    let out = lab.expect(&["cleanup"], 0);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("--- kept 2 log file(s) of the hosts' `[logs]`"),
        "{said}"
    );
    assert!(
        !master_up(&lab, "h1"),
        "the master still goes after the fetch"
    );
    let run = lab.state()["run_id"].as_str().unwrap().to_string();
    let kept = lab
        .workspace()
        .join("logs")
        .join(&run)
        .join("lab/h1")
        .join(folder.strip_prefix("/").unwrap());
    assert_eq!(
        std::fs::read_to_string(kept.join("app/app.log")).unwrap(),
        app
    );
    let end = std::fs::read_to_string(kept.join("big.log")).unwrap();
    assert_eq!(end.len(), 1024 * 1024, "the last MiB");
    assert!(big.ends_with(&end));
    assert!(!kept.join("notes.txt").exists() && !kept.join("link.log").exists());
    let again = lab.expect(&["cleanup"], 0);
    let said = String::from_utf8_lossy(&again.stdout);
    assert!(
        !said.contains("keep-logs"),
        "nothing left, nothing fetched: {said}"
    );
}

#[test]
fn a_host_whose_key_changed_is_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let mut sshd = Sshd::start(tmp.path());
    let lab = sshd.lab(&tmp.path().join("release"));
    lab.expect(&["provision"], 0);
    let config = lab.workspace().join("ssh/config");
    let stopped = Command::new("ssh")
        .arg("-F")
        .arg(&config)
        .args(["-O", "exit", "h1"])
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(stopped.success());
    sshd.run_with_new_host_key();
    let out = lab.expect(&["provision"], 3);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("host `h1` offered a host key other than the one learned"),
        "{stderr}"
    );
    assert!(!master_up(&lab, "h1"), "no connection to the impostor");
    lab.expect(&["cleanup"], 0);
}

#[test]
fn an_unreachable_host_is_waited_for_then_named() {
    let tmp = tempfile::tempdir().unwrap();
    let mut sshd = Sshd::start(tmp.path());
    sshd.stop();
    let lab = sshd.lab(&tmp.path().join("release"));
    let text = std::fs::read_to_string(&lab.config)
        .unwrap()
        .replace("wait = \"60s\"", "wait = \"2s\"");
    std::fs::write(&lab.config, text).unwrap();
    let out = lab.expect(&["provision"], 3);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("host `h1` did not answer over ssh within 2s"),
        "{stderr}"
    );
    lab.expect(&["cleanup"], 0);
}

/// Under a deep workspace (a Jenkins job in folders) the control sockets live in a short
/// folder in the temp dir; it is journaled and cleanup removes it.
#[test]
fn a_deep_workspaces_socket_folder_is_removed_by_cleanup() {
    let tmp = tempfile::tempdir().unwrap();
    let sshd = Sshd::start(tmp.path());
    let lab = sshd.lab(&tmp.path().join("release"));
    let deep = tmp.path().join("folder/job".repeat(6)).join(".rollci");
    let deep = deep.to_str().unwrap();
    lab.expect(&["--workspace", deep, "provision"], 0);
    let config = std::fs::read_to_string(Path::new(deep).join("ssh/config")).unwrap();
    let line = config.lines().find(|l| l.contains("ControlPath")).unwrap();
    let dir = line.split('"').nth(1).unwrap().trim_end_matches("/%C");
    assert!(
        dir.starts_with(&*std::env::temp_dir().to_string_lossy()),
        "{line}"
    );
    assert!(Path::new(dir).is_dir());
    lab.expect(&["--workspace", deep, "cleanup"], 0);
    assert!(!Path::new(dir).exists(), "{dir} left behind");
}
