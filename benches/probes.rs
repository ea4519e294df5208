//! `cargo bench --bench probes`: how precisely the availability probes measure injected
//! outages (50 ms interval vs the seed's 1 s) and how many probes per second one probe thread
//! sustains. Figures are printed, never asserted.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use rollci::checks::probe::{Monitor, Spec, analyze};
use rollci::config::{Connection, RequestConfig};
use rollci::workspace::evidence::{ProbeRecord, Window};

/// Injected outages, in order, each preceded by [`UPTIME`] of service.
const OUTAGES_MS: [u64; 3] = [120, 400, 2000];
const UPTIME: Duration = Duration::from_secs(1);
const FAST: Duration = Duration::from_millis(50);
const SLOW: Duration = Duration::from_secs(1);
/// 1-second monitors, started a quarter interval apart: one run shows several phases.
const PHASES: u32 = 4;
const TIMEOUT: Duration = Duration::from_secs(1);
const LOAD: Duration = Duration::from_secs(10);
/// How long a server worker sleeps when no connection is waiting.
const POLL: Duration = Duration::from_micros(200);
/// Server threads accepting on the same listener, so that a burst of connections (every
/// service's tick falls on the same instant) never overflows std's accept backlog.
const WORKERS: usize = 4;
/// Clock slack when matching a measured window to an injected outage.
const SLACK_MS: i64 = 10;
const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
/// The answer of the keep-alive server: the connection stays open for the next request.
const KEPT: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
/// How long the keep-alive server keeps an idle connection (above the probes' interval).
const KEEP_IDLE: Duration = Duration::from_secs(30);

fn main() -> anyhow::Result<()> {
    println!("rollci probe benchmark (figures are printed, never asserted)");
    precision().context("probe precision")?;
    capacity().context("probe capacity")?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The server

/// A loopback HTTP server answering every request `200 OK` from its own threads; `down`
/// closes its listener (connections are refused), `up` binds the same port again.
struct Server {
    port: u16,
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<u64>>,
    served: u64,
    rebinds: u32,
    /// Keeps connections alive (a thread per connection) instead of closing each.
    keep: bool,
}

impl Server {
    fn start() -> anyhow::Result<Server> {
        Server::start_with(false)
    }

    fn start_with(keep: bool) -> anyhow::Result<Server> {
        let listener = TcpListener::bind("127.0.0.1:0").context("failed to bind 127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let mut server = Server {
            port,
            stop: Arc::new(AtomicBool::new(false)),
            workers: Vec::new(),
            served: 0,
            rebinds: 0,
            keep,
        };
        server.serve(listener)?;
        Ok(server)
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    fn serve(&mut self, listener: TcpListener) -> anyhow::Result<()> {
        listener.set_nonblocking(true)?;
        self.stop = Arc::new(AtomicBool::new(false));
        for _ in 0..WORKERS {
            let (listener, stop) = (listener.try_clone()?, Arc::clone(&self.stop));
            let keep = self.keep;
            let worker = std::thread::Builder::new()
                .name("server".into())
                .spawn(move || serve(listener, &stop, keep))
                .context("failed to start a server thread")?;
            self.workers.push(worker);
        }
        Ok(())
    }

    /// Closes the listener (every worker's copy); returns when it is closed.
    fn down(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(!self.workers.is_empty(), "the server is already down");
        self.stop.store(true, Ordering::SeqCst);
        for worker in self.workers.drain(..) {
            self.served += worker
                .join()
                .map_err(|_| anyhow::anyhow!("a server thread panicked"))?;
        }
        Ok(())
    }

    /// Binds the same port again (std sets SO_REUSEADDR on Unix) and serves it.
    fn up(&mut self) -> anyhow::Result<()> {
        let listener = TcpListener::bind(("127.0.0.1", self.port))
            .with_context(|| format!("failed to re-bind 127.0.0.1:{}", self.port))?;
        self.rebinds += 1;
        self.serve(listener)
    }
}

/// Accepts and answers connections one at a time until told to stop, then closes the
/// listener; returns how many it answered.
fn serve(listener: TcpListener, stop: &AtomicBool, keep: bool) -> u64 {
    let mut served = 0;
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) if keep => {
                served += 1;
                std::thread::spawn(move || while answer_with(&stream, KEPT, KEEP_IDLE).is_ok() {});
            }
            Ok((stream, _)) => served += u64::from(answer(stream).is_ok()),
            Err(_) => std::thread::sleep(POLL),
        }
    }
    served
}

/// Reads one request's head and answers it; the connection closes when `stream` drops.
fn answer(stream: TcpStream) -> std::io::Result<()> {
    answer_with(&stream, RESPONSE, TIMEOUT)
}

fn answer_with(mut stream: &TcpStream, response: &[u8], idle: Duration) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(idle))?;
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 2048];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        head.extend_from_slice(&buf[..n]);
    }
    stream.write_all(response)
}

fn spec(service: &str, url: &str, interval: Duration) -> Spec {
    spec_with(service, url, interval, Connection::New)
}

fn spec_with(service: &str, url: &str, interval: Duration, connection: Connection) -> Spec {
    Spec {
        interval,
        timeout: TIMEOUT,
        ..Spec::http(service, vec![RequestConfig::get(url)], connection)
    }
}

// ---------------------------------------------------------------------------------------
// Probe precision

/// One injected outage: from the listener's close to its re-bind.
struct Outage {
    down: DateTime<Utc>,
    up: DateTime<Utc>,
    injected_ms: f64,
}

/// One outage as a monitor saw it.
struct Row {
    injected_ms: f64,
    window: Option<Window>,
    required: bool,
}

impl Row {
    /// Measured minus injected; a missed outage counts as measured 0.
    fn error_ms(&self) -> f64 {
        self.window.as_ref().map_or(0.0, |w| w.duration_ms as f64) - self.injected_ms
    }
}

fn precision() -> anyhow::Result<()> {
    let dir = tempfile::tempdir().context("failed to create a temporary directory")?;
    let mut server = Server::start()?;
    let slow_specs: Vec<Spec> = (0..PHASES)
        .map(|k| spec(&format!("every-1s-phase{k}"), &server.url(), SLOW))
        .collect();
    let slow = start_phased(&slow_specs, dir.path())?;
    let fast_spec = spec("every-50ms", &server.url(), FAST);
    let fast = Monitor::start(
        vec![fast_spec.clone()],
        &dir.path().join("fast.jsonl"),
        "outages",
    )?;
    let outages = inject(&mut server)?;
    let fast = fast.stop()?;
    let slow = slow
        .into_iter()
        .map(Monitor::stop)
        .collect::<anyhow::Result<Vec<_>>>()?;
    server.down()?;
    println!(
        "\n## Probe precision: outages injected by closing the listener of 127.0.0.1:{} and \
         re-binding the same port ({} re-binds ok), {} s of uptime between them; all \
         monitors ran at once, timeout {} ms",
        server.port,
        server.rebinds,
        UPTIME.as_secs_f64(),
        TIMEOUT.as_millis()
    );
    let fast_mae = report(&fast_spec, &fast, &outages, "");
    let slow_mae = slow_specs
        .iter()
        .zip(&slow)
        .enumerate()
        .map(|(k, (spec, records))| report(spec, records, &outages, &phase_label(k)))
        .sum::<f64>()
        / f64::from(PHASES);
    println!(
        "\nmean absolute error: {fast_mae:.1} ms at 50 ms vs {slow_mae:.1} ms at 1 s (mean of \
         the {PHASES} phases); ratio 1 s / 50 ms = {:.1}x (a missed outage counts as measured \
         0 ms)",
        slow_mae / fast_mae.max(0.001)
    );
    Ok(())
}

/// Starts one 1-second monitor per spec, each [`SLOW`] / [`PHASES`] after the previous, so
/// the outages fall at different points of their tick cycles.
fn start_phased(specs: &[Spec], dir: &Path) -> anyhow::Result<Vec<Monitor>> {
    let mut monitors = Vec::new();
    for (k, spec) in specs.iter().enumerate() {
        if k > 0 {
            std::thread::sleep(SLOW / PHASES);
        }
        let file = dir.join(format!("slow{k}.jsonl"));
        let monitor = Monitor::start(vec![spec.clone()], &file, "outages")?;
        monitors.push(monitor);
    }
    Ok(monitors)
}

fn phase_label(k: usize) -> String {
    let lead = (SLOW / PHASES) * (PHASES - 1 - k as u32);
    format!(
        ", ticks started {} ms before the 50 ms monitor",
        lead.as_millis()
    )
}

/// Takes the server down for each of [`OUTAGES_MS`] after [`UPTIME`], then serves once more.
fn inject(server: &mut Server) -> anyhow::Result<Vec<Outage>> {
    let mut outages = Vec::new();
    for ms in OUTAGES_MS {
        std::thread::sleep(UPTIME);
        server.down()?;
        let (down, started) = (Utc::now(), Instant::now());
        std::thread::sleep(Duration::from_millis(ms));
        server.up()?;
        let injected_ms = started.elapsed().as_secs_f64() * 1000.0;
        outages.push(Outage {
            down,
            up: Utc::now(),
            injected_ms,
        });
    }
    std::thread::sleep(UPTIME);
    Ok(outages)
}

/// Prints one monitor's table; returns its mean absolute error in ms.
fn report(spec: &Spec, records: &[ProbeRecord], outages: &[Outage], label: &str) -> f64 {
    let service = analyze(std::slice::from_ref(spec), records).remove(0);
    let rows = match_windows(outages, &service.windows, spec.interval);
    let spurious = service.windows.len() - rows.iter().filter(|r| r.window.is_some()).count();
    println!(
        "\ninterval {} ms{label}: {} probes, {} failed, {} window(s), {} not matching an outage",
        spec.interval.as_millis(),
        service.probes,
        service.failures.values().sum::<u64>(),
        service.windows.len(),
        spurious
    );
    println!(
        "  {:>11}  {:>11}  {:>9}  {:>6}  {:>8}  {:>15}",
        "injected ms", "measured ms", "error ms", "failed", "detected", ">= 2 intervals"
    );
    for row in &rows {
        print_row(row);
    }
    rows.iter().map(|r| r.error_ms().abs()).sum::<f64>() / rows.len().max(1) as f64
}

fn print_row(row: &Row) {
    let (measured, failed) = match &row.window {
        Some(w) => (w.duration_ms.to_string(), w.failures.to_string()),
        None => ("missed".to_string(), "0".to_string()),
    };
    println!(
        "  {:>11.1}  {:>11}  {:>+9.1}  {:>6}  {:>8}  {:>15}",
        row.injected_ms,
        measured,
        row.error_ms(),
        failed,
        if row.window.is_some() { "yes" } else { "NO" },
        if row.required { "yes" } else { "no" }
    );
}

/// Each outage with the window that started during it, if any.
fn match_windows(outages: &[Outage], windows: &[Window], interval: Duration) -> Vec<Row> {
    let slack = chrono::Duration::milliseconds(SLACK_MS);
    outages
        .iter()
        .map(|o| Row {
            injected_ms: o.injected_ms,
            window: windows
                .iter()
                .find(|w| w.start >= o.down - slack && w.start <= o.up + slack)
                .cloned(),
            required: o.injected_ms >= 2.0 * interval.as_secs_f64() * 1000.0,
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Probe capacity

/// What one load run achieved.
struct Load {
    services: usize,
    target: f64,
    achieved: f64,
    records: usize,
    failures: BTreeMap<String, u64>,
    probe_cpu: f64,
    process_cpu: f64,
    p50: f64,
    p99: f64,
    served: u64,
    overflows: u64,
}

fn capacity() -> anyhow::Result<()> {
    let tck = clock_ticks()?;
    println!(
        "\n## Probe capacity: N services every {} ms for {} s against a loopback server on \
         its own {WORKERS} threads (a fresh port per run); CPU in % of one core",
        FAST.as_millis(),
        LOAD.as_secs()
    );
    println!(
        "  {:>8}  {:>8}  {:>8}  {:>7}  {:>8}  {:>9}  {:>11}  {:>7}  {:>7}  {:>5}",
        "services",
        "target/s",
        "probes/s",
        "probes",
        "failures",
        "probe CPU",
        "process CPU",
        "p50 ms",
        "p99 ms",
        "holds"
    );
    for connection in [Connection::New, Connection::KeepAlive] {
        println!("  connection = \"{}\":", connection.as_str());
        for services in [50, 100] {
            let load =
                load(services, tck, connection).with_context(|| format!("{services} services"))?;
            print_load(&load);
        }
    }
    println!(
        "  (probes/s = records / wall time from Monitor::start to stop; probe CPU = utime+stime \
         of the thread named `probes` over the run; process CPU includes the server threads; \
         holds = >= 95% of target, < 0.1% failures, probe CPU < 100%)"
    );
    Ok(())
}

fn print_load(l: &Load) {
    let failed: u64 = l.failures.values().sum();
    let holds = l.achieved >= 0.95 * l.target
        && (failed as f64) < 0.001 * l.records as f64
        && l.probe_cpu < 100.0;
    println!(
        "  {:>8}  {:>8.0}  {:>8.1}  {:>7}  {:>8}  {:>8.1}%  {:>10.1}%  {:>7.2}  {:>7.2}  {:>5}",
        l.services,
        l.target,
        l.achieved,
        l.records,
        failed,
        l.probe_cpu,
        l.process_cpu,
        l.p50,
        l.p99,
        if holds { "yes" } else { "NO" }
    );
    if failed > 0 {
        println!("    failures by class: {:?}", l.failures);
    }
    println!(
        "    server answered {} connections; accept-queue overflows (system-wide): {}",
        l.served, l.overflows
    );
}

fn load(services: usize, tck: f64, connection: Connection) -> anyhow::Result<Load> {
    let dir = tempfile::tempdir().context("failed to create a temporary directory")?;
    let mut server = Server::start_with(connection == Connection::KeepAlive)?;
    let specs: Vec<Spec> = (0..services)
        .map(|i| spec_with(&format!("svc{i:03}"), &server.url(), FAST, connection))
        .collect();
    let overflows = listen_overflows()?;
    let started = Instant::now();
    let monitor = Monitor::start(specs, &dir.path().join("load.jsonl"), "load")?;
    let (tid, cpu) = (probe_thread()?, Instant::now());
    let (thread0, process0) = (thread_ticks(tid)?, ticks(Path::new("/proc/self/stat"))?);
    std::thread::sleep(LOAD.saturating_sub(started.elapsed()));
    let (thread1, process1) = (thread_ticks(tid)?, ticks(Path::new("/proc/self/stat"))?);
    let cpu_secs = cpu.elapsed().as_secs_f64();
    let records = monitor.stop()?;
    let wall = started.elapsed().as_secs_f64();
    server.down()?;
    let pct = |a: u64, b: u64| (b - a) as f64 / tck / cpu_secs * 100.0;
    let (p50, p99) = latency(&records);
    Ok(Load {
        services,
        target: services as f64 / FAST.as_secs_f64(),
        achieved: records.len() as f64 / wall,
        records: records.len(),
        failures: failures(&records),
        probe_cpu: pct(thread0, thread1),
        process_cpu: pct(process0, process1),
        p50,
        p99,
        served: server.served,
        overflows: listen_overflows()? - overflows,
    })
}

fn failures(records: &[ProbeRecord]) -> BTreeMap<String, u64> {
    let mut by_class = BTreeMap::new();
    for r in records.iter().filter(|r| r.outcome != "ok") {
        *by_class.entry(r.outcome.clone()).or_insert(0) += 1;
    }
    by_class
}

/// p50 and p99 latency of the successful probes (nearest rank).
fn latency(records: &[ProbeRecord]) -> (f64, f64) {
    let mut ms: Vec<f64> = records
        .iter()
        .filter(|r| r.outcome == "ok")
        .map(|r| r.latency_ms)
        .collect();
    if ms.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    ms.sort_by(f64::total_cmp);
    let rank = |p: f64| ms[((p * ms.len() as f64).ceil() as usize).clamp(1, ms.len()) - 1];
    (rank(0.50), rank(0.99))
}

// ---------------------------------------------------------------------------------------
// CPU accounting from /proc

/// The id of the one thread named `probes` (the Monitor's), once it has its name.
fn probe_thread() -> anyhow::Result<u32> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let found = threads_named("probes")?;
        match found.as_slice() {
            [tid] => return Ok(*tid),
            [] if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(2)),
            _ => bail!("expected one thread named `probes`, found {}", found.len()),
        }
    }
}

fn threads_named(name: &str) -> anyhow::Result<Vec<u32>> {
    let mut tids = Vec::new();
    for entry in std::fs::read_dir("/proc/self/task").context("failed to list /proc/self/task")? {
        let path = entry?.path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if comm.trim_end() == name {
            let tid = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            tids.push(
                tid.parse()
                    .with_context(|| format!("bad task id `{tid}`"))?,
            );
        }
    }
    Ok(tids)
}

fn thread_ticks(tid: u32) -> anyhow::Result<u64> {
    ticks(
        &Path::new("/proc/self/task")
            .join(tid.to_string())
            .join("stat"),
    )
}

/// utime + stime, in clock ticks, from a `stat` file of procfs.
fn ticks(stat: &Path) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string(stat)
        .with_context(|| format!("failed to read `{}`", stat.display()))?;
    let fields: Vec<&str> = text
        .rsplit_once(')')
        .with_context(|| format!("malformed `{}`", stat.display()))?
        .1
        .split_whitespace()
        .collect();
    // After the command name: field 3 (state) is index 0, utime (14) 11, stime (15) 12.
    let field = |i: usize| -> anyhow::Result<u64> {
        let text = fields.get(i).context("short stat line")?;
        text.parse()
            .with_context(|| format!("bad field `{text}` in `{}`", stat.display()))
    };
    Ok(field(11)? + field(12)?)
}

/// The kernel's count of connections dropped for a full accept queue (`TcpExt`).
fn listen_overflows() -> anyhow::Result<u64> {
    let text = std::fs::read_to_string("/proc/net/netstat").context("failed to read netstat")?;
    let mut rows = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let (names, values) = rows
        .next()
        .zip(rows.next())
        .context("no TcpExt in netstat")?;
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(name, _)| *name == "ListenOverflows")
        .context("no ListenOverflows in netstat")?
        .1
        .parse()
        .context("bad ListenOverflows")
}

fn clock_ticks() -> anyhow::Result<f64> {
    let out = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .context("failed to run `getconf CLK_TCK`")?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .parse()
        .with_context(|| format!("bad `getconf CLK_TCK` output `{}`", text.trim()))
}
