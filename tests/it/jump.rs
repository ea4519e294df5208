//! A lab behind a jump host, in network namespaces this test makes and removes: `jump` is
//! linked to this machine, `behind` only to `jump` (and `jump` forwards nothing), so this
//! machine cannot route to `behind`. Real sshd in both. Ansible reaches `behind` through
//! `ProxyJump`; rollci's probes reach a service on `behind` through the SOCKS tunnel the
//! static provider opens to `jump` (`tunnel = "jump"`); cleanup stops the tunnel.
//!
//! Addresses: 198.18.N.0/24 (RFC 2544's benchmarking range, not a private one), guarded by
//! an `unreachable` route added before anything else, so an address of a namespace that is
//! gone never leaves the machine. The host side of the link is 198.18.N.1/30.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::lab::{Lab, unique_block};
use crate::ssh_hosts::keygen;

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("ip (iproute2)");
    assert!(out.status.success(), "ip {args:?}: {out:?}");
}

/// The two namespaces, their links and the guard route; everything goes on drop.
struct Net {
    subnet: u8,
    id: String,
    children: Vec<Child>,
}

impl Net {
    fn new() -> Net {
        let [_, b, c, d] = unique_block();
        let subnet = b ^ c ^ d;
        let id = format!("{:05x}", std::process::id() % 0x10_0000);
        let net = Net {
            subnet,
            id,
            children: Vec::new(),
        };
        let guard = format!("198.18.{subnet}.0/24");
        ip(&["route", "add", "unreachable", &guard]);
        let (j, b) = (net.ns("jump"), net.ns("behind"));
        ip(&["netns", "add", &j]);
        ip(&["netns", "add", &b]);
        let (vh, vj) = (format!("rh{}", net.id), format!("rj{}", net.id));
        ip(&[
            "link", "add", &vh, "type", "veth", "peer", "name", &vj, "netns", &j,
        ]);
        ip(&["addr", "add", &net.addr(1, 30), "dev", &vh]);
        ip(&["link", "set", &vh, "up"]);
        ip(&["-n", &j, "addr", "add", &net.addr(2, 30), "dev", &vj]);
        let (vk, vb) = (format!("rk{}", net.id), format!("rb{}", net.id));
        ip(&[
            "-n", &j, "link", "add", &vk, "type", "veth", "peer", "name", &vb, "netns", &b,
        ]);
        ip(&["-n", &j, "addr", "add", &net.addr(5, 30), "dev", &vk]);
        ip(&["-n", &b, "addr", "add", &net.addr(6, 30), "dev", &vb]);
        for (ns, dev) in [(&j, &vj), (&j, &vk), (&b, &vb)] {
            ip(&["-n", ns, "link", "set", dev, "up"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        net
    }

    fn ns(&self, name: &str) -> String {
        format!("rollci-{name}-{}", self.id)
    }

    fn addr(&self, host: u8, prefix: u8) -> String {
        format!("198.18.{}.{host}/{prefix}", self.subnet)
    }

    fn host(&self, host: u8) -> String {
        format!("198.18.{}.{host}", self.subnet)
    }

    /// Runs `argv` inside namespace `name`, kept until the drop.
    fn spawn(&mut self, name: &str, argv: &[&str], log: &Path) {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns(name)])
            .args(argv)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap();
        self.children.push(child);
    }

    /// A real sshd on `address:22` inside `name`, with its own host key.
    fn sshd(&mut self, name: &str, address: &str, dir: &Path) {
        let dir = dir.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::create_dir_all("/run/sshd").unwrap();
        keygen(&dir.join("host_key"));
        let config = format!(
            "Port 22\nListenAddress {address}\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n\
             AuthorizedKeysFile {k}\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nLogLevel ERROR\n",
            d = dir.display(),
            k = dir.parent().unwrap().join("user_key.pub").display()
        );
        std::fs::write(dir.join("sshd_config"), config).unwrap();
        let cfg = dir.join("sshd_config");
        let args = ["/usr/sbin/sshd", "-D", "-e", "-f", cfg.to_str().unwrap()];
        self.spawn(name, &args, &dir.join("sshd.log"));
    }

    /// Waits until `address:port` answers from inside namespace `from`.
    fn wait_listening(&self, from: &str, address: &str, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let probe = format!("import socket; socket.create_connection(('{address}', {port}), 1)");
        loop {
            let ok = Command::new("ip")
                .args(["netns", "exec", &self.ns(from), "python3", "-c", &probe])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return;
            }
            assert!(Instant::now() < deadline, "{address}:{port} did not listen");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        for name in ["jump", "behind"] {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.ns(name)])
                .status();
        }
        let guard = format!("198.18.{}.0/24", self.subnet);
        let _ = Command::new("ip")
            .args(["route", "del", "unreachable", &guard])
            .status();
    }
}

fn lab(net: &Net, dir: &Path, marker: &Path) -> Lab {
    let key = dir.join("user_key");
    let playbook = dir.join("write.yml");
    std::fs::write(
        &playbook,
        "- hosts: behind\n  gather_facts: false\n  tasks:\n    - ansible.builtin.copy:\n        dest: \"{{ marker }}\"\n        content: \"{{ rollci_release }}\"\n",
    )
    .unwrap();
    let action = |name: &str| {
        format!(
            "{{ name = \"{name}\", playbook = \"{}\", extra_vars = {{ marker = \"{}\" }}, timeout = \"3m\" }}",
            playbook.display(),
            marker.display()
        )
    };
    let service = net.host(6);
    let seen = format!(
        "{{ name = \"proxy\", command = [\"python3\", \"-c\", \"import os, sys; open(sys.argv[1], 'w').write(os.environ['ROLLCI_SOCKS_PROXY'])\", \"{}\"] }}",
        dir.join("proxy").display()
    );
    Lab::with_text(&format!(
        "[lab]\nname = \"jump\"\nfrom_release = \"A\"\nto_release = \"B\"\n\n\
         [provider]\nkind = \"static\"\nwait = \"60s\"\ntunnel = \"jump\"\n\n\
         [[provider.hosts]]\nname = \"jump\"\naddress = \"{}\"\nuser = \"root\"\nkey = \"{k}\"\n\n\
         [[provider.hosts]]\nname = \"behind\"\naddress = \"{service}\"\nuser = \"root\"\n\
         key = \"{k}\"\njump = \"jump\"\ngroups = [\"behind\"]\n\n\
         [deploy]\nactions = [{}, {seen}]\n\n[upgrade]\nmode = \"all-at-once\"\naction = {}\n\n\
         [probing]\nbaseline = \"500ms\"\n\n\
         [[probes]]\nname = \"behind-http\"\nurl = \"http://{service}:8080/version\"\n\
         body_contains = \"release\"\ninterval = \"100ms\"\ntimeout = \"5s\"\nmax_downtime = \"0ms\"\n\n\
         [[probes]]\nname = \"behind-ssh\"\nkind = \"tcp\"\nurl = \"tcp://{service}:22\"\n\
         banner = \"SSH-2.0\"\ninterval = \"200ms\"\ntimeout = \"5s\"\nmax_downtime = \"0ms\"\n",
        net.host(2),
        action("deploy"),
        action("upgrade"),
        k = key.display(),
    ))
}

fn tunnels(lab: &Lab) -> Vec<serde_json::Value> {
    let state = lab.state();
    let all = state["resources"].as_array().unwrap().iter();
    all.filter(|r| r["kind"] == "socks-tunnel")
        .cloned()
        .collect()
}

#[test]
fn a_host_behind_a_jump_host_is_deployed_and_probed_through_the_tunnel() {
    let tmp = tempfile::tempdir().unwrap();
    let dir: PathBuf = tmp.path().to_path_buf();
    keygen(&dir.join("user_key"));
    let mut net = Net::new();
    net.sshd("jump", &net.host(2), &dir);
    net.sshd("behind", &net.host(6), &dir);
    let www = dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("version"), "{\"release\": \"A\"}").unwrap();
    let (service, www_arg) = (net.host(6), www.to_string_lossy().into_owned());
    let http = [
        "python3",
        "-m",
        "http.server",
        "8080",
        "--bind",
        &service,
        "--directory",
        &www_arg,
    ];
    net.spawn("behind", &http, &dir.join("http.log"));
    net.wait_listening("jump", &net.host(2), 22);
    net.wait_listening("jump", &service, 22);
    net.wait_listening("jump", &service, 8080);
    // This machine has no route to the service: only the tunnel reaches it.
    let direct: SocketAddr = format!("{service}:8080").parse().unwrap();
    assert!(TcpStream::connect_timeout(&direct, Duration::from_secs(1)).is_err());

    let marker = dir.join("release");
    let lab = lab(&net, &dir, &marker);
    lab.expect(&["provision"], 0);
    let opened = tunnels(&lab);
    assert_eq!(opened.len(), 1, "{opened:?}");
    lab.expect(&["deploy"], 0);
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "A");
    let port = opened[0]["data"]["port"].as_u64().unwrap();
    let proxy = std::fs::read_to_string(dir.join("proxy")).unwrap();
    assert_eq!(
        proxy,
        format!("127.0.0.1:{port}"),
        "commands learn the tunnel"
    );
    lab.expect(&["upgrade"], 0);
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "B");
    let availability = lab.json("evidence/availability.json");
    for service in availability["services"].as_array().unwrap() {
        assert!(service["probes"].as_u64().unwrap() > 0, "{service}");
        assert_eq!(service["downtime_ms"], 0, "{service}");
        assert_eq!(service["failures"], serde_json::json!({}), "{service}");
    }

    lab.expect(&["cleanup"], 0);
    let pid = opened[0]["data"]["pid"].as_u64().unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    assert!(
        stat.is_empty() || stat.contains(") Z"),
        "the tunnel's ssh outlived cleanup"
    );
    assert!(tunnels(&lab).iter().all(|r| r["status"] == "destroyed"));
}
