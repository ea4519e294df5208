//! The HTML report in headless Chromium and the Elasticsearch push against
//! `tests/fake_es.py`, both on evidence written into a temp workspace (no lab needed).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rollci::reports::es::{self, EsConfig};
use rollci::workspace::evidence::{
    self, ActionSpan, Availability, Counts, Percentiles, Persistent, ProbeRecord, ServiceReport,
    Smoke, TestCase, Window,
};
use rollci::workspace::journal::{Outcome, State, StepRecord};
use serde_json::Value;

use crate::lab::ROOT;

const HOSTILE: &str = "<script>document.title='PWNED'</script><img src=x onerror=alert(1)>";
const HOSTILE_URL: &str = "http://127.0.0.1:9/health?a=\"&<>";

fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(1_700_000_000_000 + ms).unwrap()
}

/// A workspace holding a finished run: journal, availability (two services, 60 s of
/// probes every 50 ms, one outage during `node2`), smoke before/after with the hostile
/// test as a regression, persistent resources.
fn workspace() -> (tempfile::TempDir, State) {
    let dir = tempfile::Builder::new()
        .prefix("rollci-report-")
        .tempdir()
        .unwrap();
    let ws = dir.path();
    let state = state();
    std::fs::write(
        ws.join("state.json"),
        serde_json::to_string(&state).unwrap(),
    )
    .unwrap();
    write_probes(ws);
    evidence::write(ws, "availability.json", &availability(ws)).unwrap();
    evidence::write(ws, "smoke-before.json", &smoke("before", &[])).unwrap();
    evidence::write(ws, "smoke-after.json", &smoke("after", &[HOSTILE])).unwrap();
    let persistent = vec![Persistent {
        name: "records/kept".into(),
        outcome: evidence::PersistentOutcome::Intact,
        checksum: Some("sha256:ab12".into()),
        detail: None,
    }];
    evidence::write(ws, "persistent.json", &persistent).unwrap();
    (dir, state)
}

fn state() -> State {
    let mut state = State::new("demo", "A", "B");
    state.run_id = "20240101T000000-42".into();
    state.created = at(-5_000);
    for (i, step) in ["provision", "deploy", "upgrade"].iter().enumerate() {
        state.steps.push(StepRecord {
            step: step.to_string(),
            phase: None,
            started: at(i as i64 * 20_000),
            ended: Some(at(i as i64 * 20_000 + 15_000)),
            outcome: if *step == "upgrade" {
                Outcome::Failed
            } else {
                Outcome::Passed
            },
            exit_code: Some(if *step == "upgrade" { 1 } else { 0 }),
            error: (*step == "upgrade").then(|| "downtime over budget <b>bold?</b>".into()),
            attempts: Vec::new(),
            owner: None,
        });
    }
    state
}

fn outage() -> Window {
    Window {
        start: at(30_000),
        end: at(32_500),
        duration_ms: 2_500,
        action: Some("node2".into()),
        failures: 50,
        class: "refused".into(),
        prober_late: false,
        first_error: None,
        connection: Some("reused".into()),
    }
}

fn service(name: &str, url: &str, windows: Vec<Window>) -> ServiceReport {
    let p = |base: f64| Percentiles {
        p50: base,
        p95: base * 2.0,
        p99: base * 3.0,
    };
    ServiceReport {
        name: name.into(),
        url: url.into(),
        probes: 1_200,
        connection: Some("keep-alive".into()),
        failures: [("refused".to_string(), windows.len() as u64 * 50)].into(),
        failures_by_connection: [("reused".to_string(), windows.len() as u64 * 50)].into(),
        availability: if windows.is_empty() { 100.0 } else { 95.83 },
        downtime_ms: windows.iter().map(|w| w.duration_ms).sum(),
        prober_late_ms: 0,
        max_late_ms: 1.5,
        within_budget: windows.is_empty(),
        budget_ms: Some(1_000),
        latency_ms: Some(p(4.0)),
        baseline_ms: Some(p(3.0)),
        windows,
    }
}

fn availability(ws: &Path) -> Availability {
    let action = |n: i64| ActionSpan {
        name: format!("node{n}"),
        start: at(10_000 + (n - 1) * 15_000),
        end: Some(at(22_000 + (n - 1) * 15_000)),
    };
    Availability {
        started: Some(at(0)),
        ended: Some(at(60_000)),
        services: vec![
            service("api", HOSTILE_URL, vec![outage()]),
            service("db", "http://127.0.0.1:5432/", Vec::new()),
        ],
        actions: (1..=3).map(action).collect(),
        probes_file: Some(evidence::dir(ws).join("probes.jsonl")),
    }
}

fn write_probes(ws: &Path) {
    let mut lines = String::new();
    for i in 0..1_200 {
        for service in ["api", "db"] {
            let down = service == "api" && (600..650).contains(&i);
            let probe = ProbeRecord {
                service: service.into(),
                t: at(i * 50),
                latency_ms: 4.0,
                outcome: if down { "refused" } else { "ok" }.into(),
                status: (!down).then_some(200),
                error: down.then(|| "connection refused".into()),
                action: None,
                late_ms: 0.0,
                connection: Some("reused".into()),
            };
            lines.push_str(&serde_json::to_string(&probe).unwrap());
            lines.push('\n');
        }
    }
    std::fs::create_dir_all(evidence::dir(ws)).unwrap();
    std::fs::write(evidence::dir(ws).join("probes.jsonl"), lines).unwrap();
}

fn smoke(phase: &str, regressions: &[&str]) -> Smoke {
    let case = |id: &str, status: &str| TestCase {
        id: id.into(),
        status: status.into(),
        duration_ms: Some(12.5),
        details: (status == "fail").then(|| "Traceback: <b>boom</b> & more".into()),
    };
    let hostile = if regressions.is_empty() {
        "success"
    } else {
        "fail"
    };
    let tests = vec![case("smoke.test_health", "success"), case(HOSTILE, hostile)];
    Smoke {
        phase: phase.into(),
        counts: Counts {
            tests: 2,
            passed: 2 - regressions.len() as u64,
            failed: regressions.len() as u64,
            ..Counts::default()
        },
        tests,
        max_failures: None,
        regressions: regressions.iter().map(|s| s.to_string()).collect(),
    }
}

// ---------------------------------------------------------------------------------------
// HTML in Chromium

/// Runs headless Chromium on a file and returns the DOM it ends with (scripts ran).
fn chromium_dump_dom(page: &Path, profile: &Path) -> String {
    let out = run_chromium(
        &["--dump-dom".into(), format!("file://{}", page.display())],
        profile,
    );
    String::from_utf8_lossy(&out).into_owned()
}

fn run_chromium(extra: &[String], profile: &Path) -> Vec<u8> {
    let mut cmd = Command::new("chromium");
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    // Its crash reports and dconf go under $HOME's .config and .cache otherwise.
    .env("HOME", profile)
    .env("XDG_CONFIG_HOME", profile.join("config"))
    .env("XDG_CACHE_HOME", profile.join("cache"))
    .args(extra)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "`chromium` is not installed, and this test needs it to render the HTML report \
             (hint: `apt-get install -y chromium` on Debian/Ubuntu)"
        ),
        Err(e) => panic!("failed to start `chromium`: {e}"),
    };
    let out = Reaped(Some(child)).wait(Duration::from_secs(120));
    assert!(
        out.status.success(),
        "chromium exited with {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn html_report_renders_in_chromium_with_hostile_names_as_text() {
    let (dir, state) = workspace();
    let page = rollci::reports::html::write(
        dir.path(),
        &rollci::reports::summary::summarize(&state, dir.path()),
    )
    .unwrap();
    assert_eq!(page, dir.path().join("reports/report.html"));
    let profile = dir.path().join("chromium-profile");
    let dom = chromium_dump_dom(&page, &profile);

    assert!(
        !dom.trim().is_empty(),
        "chromium printed no DOM: an injected `alert()` blocks the page"
    );
    assert!(dom.contains("<svg"), "no SVG timeline in the rendered DOM");
    let timeline = &dom[dom.find("<svg").unwrap()..dom.find("</svg>").unwrap()];
    assert!(
        timeline.matches("<rect").count() >= 8,
        "too few rects:\n{timeline}"
    );
    for class in [
        "class=\"ok\"",
        "class=\"failed\"",
        "class=\"window\"",
        "class=\"action\"",
    ] {
        assert!(timeline.contains(class), "timeline lacks {class}");
    }
    for name in ["node1", "node2", "node3", "api", "db"] {
        assert!(
            timeline.contains(&format!(">{name}<")),
            "timeline lacks label {name}"
        );
    }

    let title = between(&dom, "<title>", "</title>");
    assert!(
        !title.contains("PWNED"),
        "an injected script ran: title is {title:?}"
    );
    assert!(title.contains("20240101T000000-42"), "{title}");
    assert!(
        dom.contains(
            "&lt;script&gt;document.title='PWNED'&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;"
        ),
        "the hostile test name is not shown as text"
    );
    assert!(!dom.contains("<img"), "an injected element exists");
    assert_eq!(dom.matches("<script").count(), 0, "a script element exists");
    assert!(
        dom.contains("health?a=\"&amp;&lt;&gt;"),
        "the URL is not shown as text"
    );
    assert!(dom.contains("Traceback: &lt;b&gt;boom&lt;/b&gt; &amp; more"));
    assert!(
        !dom.contains("<b>bold?</b>"),
        "the step error became markup"
    );
    assert!(dom.contains("id=\"outcome\">failed<"), "outcome badge");
}

#[test]
fn html_report_without_probes_says_so_in_chromium() {
    let dir = tempfile::Builder::new()
        .prefix("rollci-report-")
        .tempdir()
        .unwrap();
    let state = state();
    let page = rollci::reports::html::write(
        dir.path(),
        &rollci::reports::summary::summarize(&state, dir.path()),
    )
    .unwrap();
    let dom = chromium_dump_dom(&page, &dir.path().join("profile"));
    assert!(!dom.contains("<svg"));
    assert!(
        dom.contains("No availability probes were recorded"),
        "{dom}"
    );
}

fn between<'a>(text: &'a str, open: &str, close: &str) -> &'a str {
    let start = text.find(open).expect(open) + open.len();
    &text[start..start + text[start..].find(close).expect(close)]
}

// ---------------------------------------------------------------------------------------
// Elasticsearch against tests/fake_es.py

/// A child process killed (and reaped) when dropped, even when the test panics.
struct Reaped(Option<Child>);

impl Reaped {
    /// Waits for the child to exit; kills it and panics after `limit` (a hang guard, not a
    /// timing assertion).
    fn wait(mut self, limit: Duration) -> std::process::Output {
        let deadline = Instant::now() + limit;
        let child = self.0.as_mut().unwrap();
        while child.try_wait().unwrap().is_none() {
            assert!(
                Instant::now() < deadline,
                "process still running after {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        self.0.take().unwrap().wait_with_output().unwrap()
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `tests/fake_es.py` on its own port, with its dump file in its own temp dir.
struct FakeEs {
    _child: Reaped,
    port: u16,
    dump: PathBuf,
    _dir: tempfile::TempDir,
}

impl FakeEs {
    fn start(args: &[&str]) -> FakeEs {
        let dir = tempfile::Builder::new()
            .prefix("rollci-fake-es-")
            .tempdir()
            .unwrap();
        let dump = dir.path().join("dump.json");
        let venv = Path::new(ROOT).join(".venv/bin/python");
        let python = if venv.exists() {
            venv
        } else {
            PathBuf::from("python3")
        };
        let child = Command::new(&python)
            .arg(Path::new(ROOT).join("tests/fake_es.py"))
            .args(args)
            .arg("--dump")
            .arg(&dump)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("failed to start `{}`: {e}", python.display()));
        let mut child = Reaped(Some(child));
        let stdout = child.0.as_mut().unwrap().stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("fake_es.py printed {line:?}, not a port"));
        FakeEs {
            _child: child,
            port,
            dump,
            _dir: dir,
        }
    }

    fn config(&self, vars: &[(&str, &str)]) -> EsConfig {
        let url = format!("http://127.0.0.1:{}", self.port);
        let mut all = vec![
            ("ROLLCI_ES_URL", url.as_str()),
            ("ROLLCI_ES_INDEX", "rollci-it"),
        ];
        all.extend_from_slice(vars);
        let map: std::collections::HashMap<&str, &str> = all.into_iter().collect();
        EsConfig::from_vars(|k| map.get(k).map(|v| v.to_string()))
            .unwrap()
            .unwrap()
    }

    fn dump(&self) -> Value {
        serde_json::from_slice(&std::fs::read(&self.dump).unwrap()).unwrap()
    }

    /// Documents of the test index by `type`.
    fn count(&self, kind: &str) -> usize {
        let dump = self.dump();
        let docs = dump["indices"]["rollci-it"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        docs.values().filter(|d| d["type"] == kind).count()
    }
}

const USER: &[&str] = &["--user", "ci", "--password", "right-pass"];

#[test]
fn es_push_delivers_run_window_and_smoke_documents() {
    let (dir, state) = workspace();
    let es = FakeEs::start(USER);
    let config = es.config(&[
        ("ROLLCI_ES_USER", "ci"),
        ("ROLLCI_ES_PASSWORD", "right-pass"),
    ]);
    let outcome = es::push_workspace(dir.path(), &state, &config).unwrap();
    assert_eq!(
        (outcome.runs, outcome.windows, outcome.smoke_tests),
        (1, 1, 4)
    );
    assert_eq!(
        (es.count("run"), es.count("window"), es.count("smoke_test")),
        (1, 1, 4)
    );
    let docs = &es.dump()["indices"]["rollci-it"];
    let run = &docs["20240101T000000-42-run"];
    assert_eq!(run["outcome"], "failed");
    assert_eq!(run["services"][0]["name"], "api");
    assert_eq!(docs["20240101T000000-42-window-0"]["action"], "node2");
    assert_eq!(docs["20240101T000000-42-window-0"]["duration_ms"], 2_500);
    let regression = docs["20240101T000000-42-smoke-after-1"].clone();
    assert_eq!(
        (
            regression["test_id"].as_str(),
            regression["regression"].as_bool()
        ),
        (Some(HOSTILE), Some(true))
    );

    // Pushing again overwrites the same ids: no duplicates.
    es::push_workspace(dir.path(), &state, &config).unwrap();
    assert_eq!(es.dump()["bulk_requests"], 2);
    assert_eq!(
        (es.count("run"), es.count("window"), es.count("smoke_test")),
        (1, 1, 4)
    );
}

#[test]
fn es_push_with_api_key_is_accepted() {
    let (dir, state) = workspace();
    let es = FakeEs::start(&["--api-key", "a2V5OnNlY3JldA=="]);
    let config = es.config(&[("ROLLCI_ES_API_KEY", "a2V5OnNlY3JldA==")]);
    es::push_workspace(dir.path(), &state, &config).unwrap();
    assert_eq!(es.count("run"), 1);
}

#[test]
fn es_wrong_credentials_give_a_clear_error_without_the_secret() {
    let (dir, state) = workspace();
    let es = FakeEs::start(USER);
    let config = es.config(&[
        ("ROLLCI_ES_USER", "ci"),
        ("ROLLCI_ES_PASSWORD", "wr0ng-s3cret"),
    ]);
    let err = es::push_workspace(dir.path(), &state, &config).unwrap_err();
    let text = format!("{err:#} {err:?} {config:?}");
    assert!(text.contains("HTTP 401"), "{text}");
    assert!(text.contains("security_exception"), "{text}");
    assert!(text.contains("hint: check `ROLLCI_ES_USER`"), "{text}");
    assert!(
        !text.contains("wr0ng-s3cret"),
        "the password leaked: {text}"
    );

    let es = FakeEs::start(&["--api-key", "the-right-key"]);
    let config = es.config(&[("ROLLCI_ES_API_KEY", "k3y-s3cret")]);
    let err = es::push_workspace(dir.path(), &state, &config).unwrap_err();
    let text = format!("{err:#} {err:?} {config:?}");
    assert!(
        text.contains("HTTP 401") && !text.contains("k3y-s3cret"),
        "{text}"
    );
    assert_eq!(es.count("run"), 0);
}

#[test]
fn es_rejected_items_give_a_count_and_the_first_reason() {
    let (dir, state) = workspace();
    let es = FakeEs::start(&["--fail-items", "2"]);
    let err = es::push_workspace(dir.path(), &state, &es.config(&[])).unwrap_err();
    let text = format!("{err:#}");
    assert!(
        text.contains("2 of 6 documents were rejected by index `rollci-it`"),
        "{text}"
    );
    assert!(
        text.contains("mapper_parsing_exception: failed to parse field"),
        "{text}"
    );
    // The other items still arrived (as with a real cluster).
    assert_eq!(es.count("smoke_test"), 4);
}

#[test]
fn es_unreachable_cluster_is_a_clear_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let map = [("ROLLCI_ES_URL", format!("http://127.0.0.1:{port}"))];
    let config = EsConfig::from_vars(|k| map.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone()))
        .unwrap()
        .unwrap();
    let (dir, state) = workspace();
    let err = es::push_workspace(dir.path(), &state, &config).unwrap_err();
    let text = format!("{err:#}");
    assert!(
        text.contains(&format!(
            "failed to send `POST http://127.0.0.1:{port}/_bulk`"
        )),
        "{text}"
    );
}
