//! Fakes for unit tests of the orchestration: a provider that journals what it is asked
//! to make and logs every call, and an executor that answers from a script instead of
//! running processes. Test-only.

use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;

use serde_json::json;

use crate::config::Config;
use crate::context::Ctx;
use crate::exec::runner::{Ended, Executor, Invocation};
use crate::exec::tools::Tool;
use crate::provider::{Destroyed, Owner, Provider};
use crate::workspace::journal::{Host, Journal, Layer, Resource, State, Status};

/// Every call the fakes saw, in order (`acquire`, `build`, `destroy vm1`, `run deploy#1`…).
pub type Calls = Rc<RefCell<Vec<String>>>;

/// A provider of one host with a lab state folder and one VM, all imaginary.
pub struct FakeProvider {
    pub calls: Calls,
    /// `acquire` fails this many times before it succeeds.
    pub acquire_failures: Rc<std::cell::Cell<u32>>,
}

impl FakeProvider {
    fn log(&self, call: String) {
        self.calls.borrow_mut().push(call);
    }

    fn ensure(&self, journal: &mut Journal, name: &str, layer: Layer) -> anyhow::Result<()> {
        if journal.state.live().any(|r| r.name == name) {
            return Ok(());
        }
        let parent = journal
            .state
            .live()
            .find(|r| r.layer == Layer::Host)
            .map(|r| r.id.clone());
        let id =
            journal.begin_resource("fake", "thing", name, layer, parent.as_deref(), json!({}))?;
        journal.set_status(&id, Status::Created)
    }
}

impl Owner for FakeProvider {
    fn name(&self) -> &'static str {
        "fake"
    }

    fn destroy(&self, resource: &Resource) -> anyhow::Result<Destroyed> {
        self.log(format!("destroy {}", resource.name));
        Ok(Destroyed::Now)
    }
}

impl Provider for FakeProvider {
    fn acquire(&self, journal: &mut Journal) -> anyhow::Result<()> {
        self.log("acquire".into());
        self.ensure(journal, "host", Layer::Host)?;
        let failures = self.acquire_failures.get();
        if failures > 0 {
            self.acquire_failures.set(failures - 1);
            anyhow::bail!("the cloud said no");
        }
        journal.state.hosts = vec![Host {
            name: "h1".into(),
            address: "127.0.0.1".into(),
            port: 1,
            groups: vec!["all".into()],
            connection: "local".into(),
            user: None,
            ports: Default::default(),
        }];
        journal.save()
    }

    fn build(&self, journal: &mut Journal) -> anyhow::Result<()> {
        self.log("build".into());
        self.ensure(journal, "state", Layer::LabState)?;
        self.ensure(journal, "vm1", Layer::Vm)
    }

    fn reconcile(&self, _journal: &mut Journal) -> anyhow::Result<()> {
        Ok(())
    }

    fn find_strays(&self, _journal: &mut Journal) -> anyhow::Result<()> {
        self.log("find_strays".into());
        Ok(())
    }

    fn vars(&self) -> serde_json::Map<String, serde_json::Value> {
        serde_json::Map::new()
    }

    fn tools(&self) -> Vec<Tool> {
        Vec::new()
    }
}

/// Answers each invocation with what `script` says for its label (`deploy/deploy#1`), and
/// keeps every invocation it was given in `seen`.
pub struct FakeExecutor {
    pub calls: Calls,
    pub seen: Rc<RefCell<Vec<Invocation>>>,
    pub script: Box<dyn Fn(&str) -> Ended>,
}

impl Executor for FakeExecutor {
    fn run(
        &self,
        inv: &Invocation,
        _started: &mut dyn FnMut(crate::workspace::journal::ProcessId),
    ) -> anyhow::Result<Ended> {
        self.calls.borrow_mut().push(format!("run {}", inv.label));
        self.seen.borrow_mut().push(inv.clone());
        Ok((self.script)(&inv.label))
    }
}

/// What the fakes of a test context record.
#[derive(Clone, Default)]
pub struct Fakes {
    pub calls: Calls,
    /// How many more times `acquire` fails.
    pub acquire_failures: Rc<std::cell::Cell<u32>>,
    pub seen: Rc<RefCell<Vec<Invocation>>>,
}

/// A lab file with the given tables after a minimal `[lab]`, `[provider]` and upgrade.
pub fn config(extra: &str) -> Config {
    let text = format!(
        "[lab]\nname = \"t\"\nfrom_release = \"A\"\nto_release = \"B\"\n[provider]\nkind = \"local\"\n{extra}\n"
    );
    let text = if text.contains("[upgrade]") {
        text
    } else {
        format!(
            "{text}[upgrade]\nmode = \"all-at-once\"\naction = {{ name = \"up\", command = [\"true\"] }}\n"
        )
    };
    Config::parse(&text, Path::new("lab.toml")).unwrap()
}

/// A context in `workspace` around the fakes; `script` decides how each attempt ends.
pub fn ctx(
    workspace: &Path,
    config: Config,
    script: impl Fn(&str) -> Ended + 'static,
) -> (Ctx, Fakes) {
    let fakes = Fakes::default();
    let calls = fakes.calls.clone();
    let journal = Journal::open(workspace, || State::new("t", "A", "B")).unwrap();
    let provider = FakeProvider {
        calls: calls.clone(),
        acquire_failures: fakes.acquire_failures.clone(),
    };
    let mut ctx = Ctx::new(config, workspace.to_path_buf(), journal, Box::new(provider));
    ctx.executor = Box::new(FakeExecutor {
        calls,
        seen: fakes.seen.clone(),
        script: Box::new(script),
    });
    (ctx, fakes)
}

/// A loopback HTTP/1.1 server answering every request with `answer(raw request)`; it keeps
/// each raw request and stops when dropped.
pub struct Server {
    pub addr: std::net::SocketAddr,
    pub requests: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    pub fn start(answer: impl Fn(&str) -> (u16, String) + Send + 'static) -> Server {
        use std::io::{Read, Write};
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (seen, stopped) = (requests.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(mut stream) = stream else { continue };
                let raw = read_request(&mut stream);
                seen.lock().unwrap().push(raw.clone());
                let (status, body) = answer(&raw);
                let reply = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(reply.as_bytes());
                let _ = stream.read(&mut [0; 1]);
            }
        });
        Server {
            addr,
            requests,
            stop,
            thread: Some(thread),
        }
    }
}

fn read_request(stream: &mut std::net::TcpStream) -> String {
    use std::io::Read;
    let mut data = Vec::new();
    let mut buf = [0; 4096];
    loop {
        let n = stream.read(&mut buf).unwrap_or(0);
        data.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&data).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                })
                .unwrap_or(0);
            if data.len() >= end + 4 + length || n == 0 {
                return text;
            }
        } else if n == 0 {
            return text;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = std::net::TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
