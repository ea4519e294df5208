//! A lab for one test: its own temp workspace, its own loopback block, the demo playbooks,
//! and a `Drop` that runs `rollci cleanup` so nothing outlives the test, even a failed one.

use std::hash::{BuildHasher, RandomState};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use assert_cmd::Command;
use serde_json::Value;

pub const ROOT: &str = env!("CARGO_MANIFEST_DIR");

pub struct Lab {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    /// PATH given to rollci (the venv's ansible first).
    pub path_env: String,
}

/// The demo lab file with playbooks made absolute and a unique address block.
pub fn demo_text(base: [u8; 4]) -> String {
    example_text("rollci.toml", base)
}

/// A lab file of `examples/demo/` made runnable from a temp folder: absolute paths, and its
/// own address block.
pub fn example_text(name: &str, base: [u8; 4]) -> String {
    let demo = Path::new(ROOT).join("examples/demo");
    let text = std::fs::read_to_string(demo.join(name)).unwrap();
    let address = format!(
        "base_address = \"{}.{}.{}.{}\"",
        base[0], base[1], base[2], base[3]
    );
    let smoke = demo.join("smoke").display().to_string();
    text.lines()
        .map(|line| {
            if line.starts_with("base_address = ") {
                address.clone()
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        .replace(
            "playbook = \"playbooks/",
            &format!("playbook = \"{}/playbooks/", demo.display()),
        )
        .replace(
            "\"-s\", \"smoke\", \"-t\", \"smoke\"",
            &format!("\"-s\", \"{smoke}\", \"-t\", \"{smoke}\""),
        )
}

/// A random 127.x.y.2 block outside 127.0.0.0/24, so parallel tests never share addresses.
pub fn unique_block() -> [u8; 4] {
    let h = RandomState::new().hash_one(std::process::id());
    [
        127,
        20 + (h % 200) as u8,
        ((h >> 8) % 250) as u8,
        2 + ((h >> 16) % 40 * 5) as u8,
    ]
}

impl Lab {
    /// The demo lab plus `extra` TOML appended (more actions, overrides).
    pub fn demo(extra: &str) -> Lab {
        let base = unique_block();
        Lab::with_text(&format!("{}\n{extra}\n", demo_text(base)))
    }

    /// A lab file of `examples/demo/` plus `extra` TOML appended.
    pub fn example(name: &str, extra: &str) -> Lab {
        Lab::with_text(&format!(
            "{}\n{extra}\n",
            example_text(name, unique_block())
        ))
    }

    /// Reads an evidence or report file of the workspace as JSON.
    pub fn json(&self, relative: &str) -> Value {
        let text = std::fs::read_to_string(self.workspace().join(relative)).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    pub fn with_text(text: &str) -> Lab {
        let dir = tempfile::Builder::new()
            .prefix("rollci-it-")
            .tempdir()
            .unwrap();
        let config = dir.path().join("rollci.toml");
        std::fs::write(&config, text).unwrap();
        let venv = Path::new(ROOT).join(".venv/bin");
        let path_env = format!(
            "{}:{}",
            venv.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        Lab {
            dir,
            config,
            path_env,
        }
    }

    pub fn workspace(&self) -> PathBuf {
        self.dir.path().join(".rollci")
    }

    /// `rollci --config <lab> ARGS` in the lab's folder, with a clean rollci environment.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::from_std(self.std_cmd(args));
        cmd.timeout(Duration::from_secs(600));
        cmd
    }

    /// The same command as [`Lab::cmd`], as a plain process to start in the background.
    pub fn std_cmd(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("rollci"));
        cmd.current_dir(self.dir.path())
            .env_clear()
            .env("PATH", &self.path_env)
            .env("HOME", self.dir.path())
            .arg("--config")
            .arg(&self.config)
            .args(args);
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        let out = self.cmd(args).output().unwrap();
        eprintln!(
            "--- rollci {args:?} -> {:?}\n{}{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Runs and asserts the exit code.
    pub fn expect(&self, args: &[&str], code: i32) -> Output {
        let out = self.run(args);
        assert_eq!(out.status.code(), Some(code), "rollci {args:?}");
        out
    }

    pub fn state(&self) -> Value {
        let text = std::fs::read_to_string(self.workspace().join("state.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    pub fn status(&self) -> Value {
        let out = self.expect(&["status", "--json"], 0);
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// `address:port` of a host of the journal.
    pub fn host(&self, name: &str) -> SocketAddr {
        let state = self.state();
        let host = state["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["name"] == name)
            .unwrap();
        format!("{}:{}", host["address"].as_str().unwrap(), host["port"])
            .parse()
            .unwrap()
    }

    /// Asserts cleanup left nothing: every resource destroyed, no journaled process alive,
    /// the lab folder gone and no host address answering.
    pub fn assert_nothing_left(&self) {
        let state = self.state();
        for r in state["resources"].as_array().unwrap() {
            assert_eq!(r["status"], "destroyed", "resource left: {r}");
            if r["kind"] == "process" {
                let pid = r["data"]["pid"].as_u64().unwrap();
                assert!(
                    !process_alive(pid, r["data"]["start_time"].as_u64().unwrap()),
                    "process {pid} alive"
                );
            }
        }
        assert!(!self.workspace().join("lab").exists(), "lab folder left");
        for host in state["hosts"].as_array().unwrap() {
            let addr: SocketAddr =
                format!("{}:{}", host["address"].as_str().unwrap(), host["port"])
                    .parse()
                    .unwrap();
            assert!(
                TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_err(),
                "{addr} still answers"
            );
        }
        assert!(
            !self.dir.path().join(".ansible").exists(),
            "ansible wrote into HOME"
        );
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.workspace().join("state.json").exists() {
            let _ = self.cmd(&["cleanup"]).output();
        }
    }
}

fn process_alive(pid: u64, started: u64) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let rest = &stat[stat.rfind(')').unwrap() + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields[0] != "Z" && fields[19].parse::<u64>().ok() == Some(started)
}

/// A minimal HTTP/1.0 request; returns (status, body).
pub fn http(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let body = body.unwrap_or("");
    let request = format!(
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = response.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}
