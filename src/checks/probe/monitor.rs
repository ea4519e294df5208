//! The running probes: every service on its own ticker, each tick its own task, every
//! result appended to the probes file as it comes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use tokio::sync::{mpsc, watch};

use crate::workspace::evidence::ProbeRecord;

use super::command::Worker;
use super::request::send;
use super::spec::Spec;
use super::transport::Transport;

/// Probes running in the background of the calling thread.
pub struct Monitor {
    stop: watch::Sender<bool>,
    action: Arc<Mutex<String>>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<Vec<ProbeRecord>>>>,
    pub file: PathBuf,
}

impl Monitor {
    /// Starts probing, tagging results with `action` (e.g. [`BASELINE`]) until
    /// [`Monitor::set_action`]; every result is appended to `file` (JSON lines) as it
    /// arrives. The first tag is given here: the first probes fire at once, before a
    /// `set_action` right after `start` could run.
    pub fn start(specs: Vec<Spec>, file: &Path, action: &str) -> anyhow::Result<Monitor> {
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let out = std::fs::File::create(file)
            .with_context(|| format!("failed to create `{}`", file.display()))?;
        let (stop, stopped) = watch::channel(false);
        let action = Arc::new(Mutex::new(action.to_string()));
        let shared = Arc::clone(&action);
        let logs = file.parent().unwrap_or(Path::new(".")).to_path_buf();
        let (ready_tx, ready) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("probes".into())
            .spawn(move || run(specs, out, stopped, shared, (logs, ready_tx)))
            .context("failed to start the probe thread")?;
        // Client commands are started before the first probe: a client that cannot start
        // is the lab file's error, told now, and its start-up is not counted as downtime.
        if let Ok(Err(e)) | Err(e) = ready
            .recv()
            .map_err(|_| anyhow::anyhow!("the probe thread ended before it started"))
        {
            let _ = stop.send(true);
            let _ = thread.join();
            return Err(e);
        }
        Ok(Monitor {
            stop,
            action,
            thread: Some(thread),
            file: file.to_path_buf(),
        })
    }

    /// Tags the probes started from now on with the running upgrade action.
    pub fn set_action(&self, name: &str) {
        if let Ok(mut a) = self.action.lock() {
            *a = name.to_string();
        }
    }

    /// Stops scheduling, waits for probes in flight and returns every result, in time order.
    pub fn stop(mut self) -> anyhow::Result<Vec<ProbeRecord>> {
        let _ = self.stop.send(true);
        let thread = self.thread.take().context("monitor already stopped")?;
        let mut records = thread
            .join()
            .map_err(|_| anyhow::anyhow!("the probe thread panicked"))??;
        records.sort_by_key(|r| r.t);
        Ok(records)
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Where client commands log, and how the probe thread tells it has started every prober.
type Start = (PathBuf, std::sync::mpsc::Sender<anyhow::Result<()>>);

fn run(
    specs: Vec<Spec>,
    out: std::fs::File,
    stopped: watch::Receiver<bool>,
    action: Arc<Mutex<String>>,
    start: Start,
) -> anyhow::Result<Vec<ProbeRecord>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            let _ = start.1.send(Err(anyhow::anyhow!(
                "failed to start the probe runtime: {e}"
            )));
            return Ok(Vec::new());
        }
    };
    runtime.block_on(schedule(specs, out, stopped, action, start))
}

async fn schedule(
    specs: Vec<Spec>,
    out: std::fs::File,
    stopped: watch::Receiver<bool>,
    action: Arc<Mutex<String>>,
    (logs, ready): Start,
) -> anyhow::Result<Vec<ProbeRecord>> {
    let probers = match probers(specs, &logs).await {
        Ok(p) => {
            let _ = ready.send(Ok(()));
            p
        }
        Err(e) => {
            let _ = ready.send(Err(e));
            return Ok(Vec::new());
        }
    };
    let (tx, rx) = mpsc::unbounded_channel();
    let writer = tokio::spawn(collect(rx, out));
    let mut tickers = Vec::new();
    let count = probers.len().max(1) as u32;
    for (i, prober) in probers.into_iter().enumerate() {
        // Services start spread over one interval: no synchronized burst every tick.
        let offset = prober.spec.interval * i as u32 / count;
        let ctx = (tx.clone(), stopped.clone(), Arc::clone(&action));
        tickers.push(tokio::spawn(tick(prober, offset, ctx)));
    }
    drop(tx);
    for t in tickers {
        t.await.context("a probe ticker failed")?;
    }
    writer.await.context("the probe writer failed")?
}

/// New-connection probes share one client without a pool; each keep-alive probe has its
/// own pool, as each user's session has; each client command is started.
async fn probers(specs: Vec<Spec>, logs: &Path) -> anyhow::Result<Vec<Prober>> {
    let shared = Transport::new_connections()?;
    let mut probers = Vec::new();
    for spec in specs {
        probers.push(Prober::of(spec, &shared, logs).await?);
    }
    Ok(probers)
}

/// One service's probe and what it sends with.
struct Prober {
    spec: Arc<Spec>,
    via: Via,
}

enum Via {
    Http(Transport),
    /// A client command: one round at a time, as a user's script runs.
    Command(Box<Worker>),
}

impl Prober {
    async fn of(spec: Spec, shared: &Transport, logs: &Path) -> anyhow::Result<Prober> {
        let via = match (&spec.command, spec.connection) {
            (Some(command), _) => {
                let log = logs.join(format!("probe-{}.stderr", spec.service));
                let worker = Worker::start(command, &log)
                    .await
                    .with_context(|| format!("probe `{}`", spec.service))?;
                Via::Command(Box::new(worker))
            }
            (None, Some(mode @ crate::config::Connection::KeepAlive)) => {
                Via::Http(Transport::for_mode(mode)?)
            }
            (None, _) => Via::Http(shared.clone()),
        };
        Ok(Prober {
            spec: Arc::new(spec),
            via,
        })
    }
}

type TickCtx = (
    mpsc::UnboundedSender<ProbeRecord>,
    watch::Receiver<bool>,
    Arc<Mutex<String>>,
);

/// Launches one probe per interval until stopped, then waits for those in flight.
async fn tick(prober: Prober, offset: Duration, (tx, mut stopped, action): TickCtx) {
    let Prober { spec, mut via } = prober;
    let start = tokio::time::Instant::now() + offset;
    let mut interval = tokio::time::interval_at(start, spec.interval);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut in_flight = tokio::task::JoinSet::new();
    let mut last_round = start;
    loop {
        let planned = tokio::select! {
            planned = interval.tick() => planned,
            _ = stopped.changed() => break,
        };
        if *stopped.borrow() {
            break;
        }
        let label = action.lock().map(|a| a.clone()).unwrap_or_default();
        match &mut via {
            Via::Command(worker) => {
                // Late only past the end of its own last round, which it waits for as a
                // script does: its slowness is the service's, not the prober's.
                let late = tokio::time::Instant::now() - planned.max(last_round);
                let t = Utc::now();
                let outcome = worker.probe(spec.timeout).await;
                last_round = tokio::time::Instant::now();
                let _ = tx.send(outcome.record(&spec.service, t, label, late));
            }
            Via::Http(transport) => {
                let (transport, spec, tx) = (transport.clone(), Arc::clone(&spec), tx.clone());
                in_flight.spawn(async move {
                    // A stalled prober (or machine) sends late: measured, so that its
                    // timeouts are not taken for the service's.
                    let late = planned.elapsed();
                    let t = Utc::now();
                    let r = &spec.requests;
                    let outcome = send(&transport, r, spec.timeout, spec.auth.as_deref()).await;
                    let _ = tx.send(outcome.record(&spec.service, t, label, late));
                });
            }
        }
        while in_flight.try_join_next().is_some() {}
    }
    while in_flight.join_next().await.is_some() {}
    if let Via::Command(worker) = via {
        worker.stop().await;
    }
}

async fn collect(
    mut rx: mpsc::UnboundedReceiver<ProbeRecord>,
    out: std::fs::File,
) -> anyhow::Result<Vec<ProbeRecord>> {
    let mut out = std::io::BufWriter::new(out);
    let mut records = Vec::new();
    while let Some(record) = rx.recv().await {
        serde_json::to_writer(&mut out, &record)?;
        out.write_all(b"\n")?;
        records.push(record);
        // Lines reach the file as soon as no other result waits: a crash loses nothing
        // written, and `tail -f` shows the probes live.
        if rx.is_empty() {
            out.flush()?;
        }
    }
    out.flush().context("failed to write the probes file")?;
    Ok(records)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::Monitor;
    use crate::checks::probe::spec::Spec;
    use crate::config::RequestConfig;

    #[test]
    fn the_first_probes_carry_the_label_given_at_start() {
        // A port nobody listens on: every probe fails at once, which is all this needs.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}/");
        let spec = Spec {
            service: "s".into(),
            url: url.clone(),
            requests: vec![RequestConfig::get(url)],
            interval: Duration::from_millis(50),
            timeout: Duration::from_secs(1),
            budget: None,
            auth: None,
            connection: None,
            command: None,
        };
        let dir = tempfile::tempdir().unwrap();
        let monitor = Monitor::start(vec![spec], &dir.path().join("p.jsonl"), "first").unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let records = monitor.stop().unwrap();
        assert!(!records.is_empty());
        assert!(
            records.iter().all(|r| r.action.as_deref() == Some("first")),
            "{records:?}"
        );
    }
}
