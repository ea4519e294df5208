//! The evidence an upgrade leaves: availability per service, smoke results per phase and
//! the fate of persistent resources. Producers write these records into
//! `<workspace>/evidence/`; reporters (summary, JUnit, HTML, Elasticsearch) read them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Folder of the evidence files inside a workspace.
pub fn dir(workspace: &Path) -> PathBuf {
    workspace.join("evidence")
}

/// Availability of one probed service across the upgrade.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ServiceReport {
    pub name: String,
    pub url: String,
    pub probes: u64,
    /// How the probe reached the service: `keep-alive` (connections reused, as clients
    /// do), `new` (a new connection per request) or `command` (a client's own rounds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<String>,
    /// Failed probes by class: `status`, `timeout`, `refused`, `reset`, `closed`, `other`.
    pub failures: BTreeMap<String, u64>,
    /// Failed probes by the connection their failing request went out on (`new`,
    /// `reused`, `unknown`): a failure only reused connections meet is a client's.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub failures_by_connection: BTreeMap<String, u64>,
    /// Percentage of probes that passed (0–100).
    pub availability: f64,
    /// Downtime of the service's own windows (those of a late prober left out).
    pub downtime_ms: u64,
    /// Time in windows the prober or the machine caused (see [`Window::prober_late`]).
    #[serde(default)]
    pub prober_late_ms: u64,
    /// The latest any probe of the service was sent, in ms after its planned tick.
    #[serde(default)]
    pub max_late_ms: f64,
    pub windows: Vec<Window>,
    /// Latency of successful probes during the upgrade.
    pub latency_ms: Option<Percentiles>,
    /// Latency of successful probes before the first upgrade action (the baseline).
    pub baseline_ms: Option<Percentiles>,
    /// The lab's budget (`max_downtime`), if any.
    pub budget_ms: Option<u64>,
    pub within_budget: bool,
}

impl ServiceReport {
    /// `closed 2 (reused 2), refused 40 (new 40)`: what failed, and on which connections.
    pub fn failure_text(&self) -> String {
        let classes: Vec<String> = self
            .failures
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(class, n)| format!("{class} {n}"))
            .collect();
        let connections: Vec<String> = self
            .failures_by_connection
            .iter()
            .map(|(c, n)| format!("{c} {n}"))
            .collect();
        match (classes.is_empty(), connections.is_empty()) {
            (true, _) => "none".into(),
            (false, true) => classes.join(", "),
            (false, false) => format!(
                "{} (on connections: {})",
                classes.join(", "),
                connections.join(", ")
            ),
        }
    }

    /// How many of its windows are the service's own (not a late prober's).
    pub fn own_windows(&self) -> usize {
        self.windows.iter().filter(|w| !w.prober_late).count()
    }
}

/// One outage: from the first failed probe to the next successful one.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Window {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub duration_ms: u64,
    /// The upgrade action (component) running when the outage began.
    pub action: Option<String>,
    pub failures: u64,
    /// The failure class seen most in the window.
    pub class: String,
    /// Every failure in it was a timeout of the prober's or the machine's making (a late
    /// probe, a late timer, or every service timing out at once): not the service's
    /// downtime, and not counted against its budget.
    #[serde(default)]
    pub prober_late: bool,
    /// What the window's first failed probe said (status and the start of the answer, or
    /// the connection error): the first clue to why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
    /// The connection the first failed request went out on (`new`, `reused`, `unknown`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<String>,
}

impl Window {
    /// The class, and the connection when a reused one failed: `closed (reused)`.
    pub fn class_text(&self) -> String {
        match self.connection.as_deref() {
            Some(c @ ("reused" | "unknown")) => format!("{} ({c} connection)", self.class),
            _ => self.class.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct Percentiles {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
}

/// When an upgrade action ran (marked on the timeline).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ActionSpan {
    pub name: String,
    pub start: DateTime<Utc>,
    pub end: Option<DateTime<Utc>>,
}

/// Everything the probes measured during one upgrade (`evidence/availability.json`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Availability {
    pub started: Option<DateTime<Utc>>,
    pub ended: Option<DateTime<Utc>>,
    pub services: Vec<ServiceReport>,
    pub actions: Vec<ActionSpan>,
    /// The JSON-lines file holding every probe result.
    pub probes_file: Option<PathBuf>,
}

/// One line of the probes file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProbeRecord {
    pub service: String,
    /// Start of the probe.
    pub t: DateTime<Utc>,
    pub latency_ms: f64,
    /// `ok`, `status`, `timeout`, `refused`, `reset`, `closed` or `other`.
    pub outcome: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `baseline` before the first upgrade action, else the action running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// How late the prober sent it: from its planned tick to the request going out.
    #[serde(default)]
    pub late_ms: f64,
    /// The connection it went out on: `new`, `reused` (kept alive from an earlier probe),
    /// `unknown` (the probe overlapped itself); none for a client command's rounds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<String>,
}

/// Counts of one smoke run, as `subunit-stats` reports them.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Counts {
    pub tests: u64,
    pub passed: u64,
    pub failed: u64,
    pub skipped: u64,
    /// Expected failures and unexpected successes are counted apart.
    pub xfail: u64,
    pub uxsuccess: u64,
}

/// One test's final result.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TestCase {
    pub id: String,
    /// `success`, `fail`, `skip`, `xfail`, `uxsuccess`.
    pub status: String,
    pub duration_ms: Option<f64>,
    /// Failure or skip reason / traceback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
}

/// A smoke run of one phase (`evidence/smoke-<phase>.json`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Smoke {
    pub phase: String,
    pub counts: Counts,
    pub tests: Vec<TestCase>,
    pub max_failures: Option<u64>,
    /// Tests that passed before and fail after (only in phase `after`).
    #[serde(default)]
    pub regressions: Vec<String>,
}

/// Duration statistics of a Rally workload or atomic action, in ms (`None`: Rally had no
/// successful iteration to compute it from).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct DurationStats {
    pub min: Option<f64>,
    pub median: Option<f64>,
    pub p90: Option<f64>,
    pub p95: Option<f64>,
    pub max: Option<f64>,
    pub avg: Option<f64>,
}

impl DurationStats {
    /// The statistic named as `[verify.rally] metric` names it (`median`, `p90`, `p95`,
    /// `avg`, `max`).
    pub fn get(&self, metric: &str) -> Option<f64> {
        match metric {
            "median" => self.median,
            "p90" => self.p90,
            "p95" => self.p95,
            "avg" => self.avg,
            "max" => self.max,
            _ => None,
        }
    }
}

/// One workload of a Rally task report.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RallyWorkload {
    /// The scenario (`KeystoneBasic.create_and_list_users`), `#2`… when a task runs it twice.
    pub name: String,
    pub iterations: u64,
    pub failed: u64,
    pub pass_sla: bool,
    /// The SLA criteria that failed, in Rally's words.
    #[serde(default)]
    pub sla_failures: Vec<String>,
    pub total: DurationStats,
    /// Each atomic action (`keystone_v3.create_user`…) with its statistics.
    #[serde(default)]
    pub atomics: Vec<(String, DurationStats)>,
}

/// A workload's duration after the upgrade against before.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RallyComparison {
    pub workload: String,
    pub metric: String,
    pub before_ms: Option<f64>,
    pub after_ms: Option<f64>,
    /// after / before (`None` when either side has no figure).
    pub ratio: Option<f64>,
    /// Past `max_slowdown` and past the noise floor: a check failure.
    pub slow: bool,
}

/// A Rally run of one phase (`evidence/rally-<phase>.json`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Rally {
    pub phase: String,
    pub workloads: Vec<RallyWorkload>,
    pub max_slowdown: f64,
    /// Only in phase `after`.
    #[serde(default)]
    pub comparisons: Vec<RallyComparison>,
}

/// A persistent resource's fate after the upgrade.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Persistent {
    pub name: String,
    pub outcome: PersistentOutcome,
    pub checksum: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// What became of a persistent resource: `created` (before the upgrade), `intact`,
/// `changed` or `lost` (after it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PersistentOutcome {
    Created,
    Intact,
    Changed,
    Lost,
}

impl PersistentOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            PersistentOutcome::Created => "created",
            PersistentOutcome::Intact => "intact",
            PersistentOutcome::Changed => "changed",
            PersistentOutcome::Lost => "lost",
        }
    }

    /// Whether the resource is as it should be at this point.
    pub fn is_good(self) -> bool {
        matches!(self, PersistentOutcome::Created | PersistentOutcome::Intact)
    }
}

/// Reads an evidence file, `None` when it was never written.
pub fn read<T: serde::de::DeserializeOwned>(
    workspace: &Path,
    name: &str,
) -> anyhow::Result<Option<T>> {
    let path = dir(workspace).join(name);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .with_context(|| format!("failed to parse `{}`", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("failed to read `{}`", path.display())),
    }
}

/// Writes an evidence file atomically.
pub fn write<T: Serialize>(workspace: &Path, name: &str, value: &T) -> anyhow::Result<PathBuf> {
    let path = dir(workspace).join(name);
    crate::workspace::atomic::write(&path, &serde_json::to_vec_pretty(value)?)?;
    Ok(path)
}
