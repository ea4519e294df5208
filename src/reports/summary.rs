//! The run's summary (`reports/summary.json`), built from the journal alone so it can be
//! written after any failure. Later reporters (JUnit, HTML, Elasticsearch) read the same
//! [`Summary`]; this module is the model only, [`super::refresh`] writes every report.

use std::path::{Path, PathBuf};

use serde::Serialize;

use std::collections::BTreeMap;

use super::phases::{self, PhaseSummary};
use crate::flow;
use crate::workspace::evidence::{
    self, ActionSpan, Availability, Counts, Persistent, PersistentOutcome, Rally, RallyComparison,
    RallyWorkload, ServiceReport, Smoke,
};
use crate::workspace::journal::{Outcome, State, Status};

/// Version of `summary.json`; documented in the README.
pub const SUMMARY_VERSION: u32 = 1;

#[derive(Debug, Serialize)]
pub struct Summary {
    pub summary_version: u32,
    pub run_id: String,
    pub lab: String,
    pub from_release: String,
    pub to_release: String,
    /// `passed`, `failed` or `incomplete` (some step of the flow never ran).
    pub outcome: String,
    pub flow_complete: bool,
    pub incomplete: Vec<String>,
    pub steps: Vec<StepSummary>,
    pub resources: ResourceSummary,
    /// Availability per probed service during the upgrade, keyed by service name.
    pub services: BTreeMap<String, ServiceReport>,
    /// The upgrade actions in the order they ran (the timeline's marks).
    pub upgrade_actions: Vec<ActionSpan>,
    /// Downtime of every probed service within each upgrade action (expand, each node,
    /// contract…), in the order the actions ran.
    pub phases: Vec<PhaseSummary>,
    pub smoke: SmokeSummary,
    /// Rally's workloads before and after the upgrade, and their comparison.
    pub rally: RallySummary,
    pub persistent: PersistentSummary,
    /// Resources still live after a cleanup ran (empty when cleanup has not run yet).
    pub leaked: Vec<String>,
}

#[derive(Debug, Default, Serialize)]
pub struct SmokeSummary {
    pub before: Option<Counts>,
    pub after: Option<Counts>,
    /// Tests that passed before the upgrade and fail after it.
    pub regressions: Vec<String>,
}

#[derive(Debug, Default, Serialize)]
pub struct RallySummary {
    pub before: Option<Vec<RallyWorkload>>,
    pub after: Option<Vec<RallyWorkload>>,
    pub max_slowdown: Option<f64>,
    /// Each workload after against before (the metric the lab chose).
    pub comparisons: Vec<RallyComparison>,
}

#[derive(Debug, Default, Serialize)]
pub struct PersistentSummary {
    pub created: usize,
    pub intact: usize,
    pub changed: usize,
    pub lost: usize,
    pub resources: Vec<Persistent>,
}

#[derive(Debug, Serialize)]
pub struct StepSummary {
    pub step: String,
    pub outcome: Outcome,
    pub exit_code: Option<u8>,
    pub duration_ms: Option<i64>,
    pub attempts: usize,
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ResourceSummary {
    pub total: usize,
    pub destroyed: usize,
    /// Resources not destroyed: leaked if cleanup already ran.
    pub live: Vec<String>,
}

/// Summarizes a journal and the evidence files of its workspace (missing ones are empty).
pub fn summarize(state: &State, workspace: &Path) -> Summary {
    let availability: Availability = evidence::read(workspace, "availability.json")
        .ok()
        .flatten()
        .unwrap_or_default();
    let before: Option<Smoke> = evidence::read(workspace, "smoke-before.json")
        .ok()
        .flatten();
    let after: Option<Smoke> = evidence::read(workspace, "smoke-after.json").ok().flatten();
    let persistent: Vec<Persistent> = evidence::read(workspace, "persistent.json")
        .ok()
        .flatten()
        .unwrap_or_default();
    let rally_before: Option<Rally> = evidence::read(workspace, "rally-before.json")
        .ok()
        .flatten();
    let rally_after: Option<Rally> = evidence::read(workspace, "rally-after.json").ok().flatten();
    let cleaned = state.steps.iter().any(|s| s.step == "cleanup");
    let incomplete = flow::incomplete(state);
    // A step that was retried by hand counts by its latest record.
    let mut latest = std::collections::BTreeMap::new();
    for s in &state.steps {
        latest.insert(s.label(), s.outcome);
    }
    let failed = latest.values().any(|o| *o == Outcome::Failed);
    let outcome = match (failed, incomplete.is_empty()) {
        (true, _) => "failed",
        (false, true) => "passed",
        (false, false) => "incomplete",
    };
    let services: BTreeMap<String, ServiceReport> = availability
        .services
        .into_iter()
        .map(|s| (s.name.clone(), s))
        .collect();
    Summary {
        phases: phases::summarize(&availability.actions, &services),
        summary_version: SUMMARY_VERSION,
        run_id: state.run_id.clone(),
        lab: state.lab.clone(),
        from_release: state.from_release.clone(),
        to_release: state.to_release.clone(),
        outcome: outcome.into(),
        flow_complete: incomplete.is_empty(),
        incomplete,
        steps: state.steps.iter().map(step_summary).collect(),
        resources: ResourceSummary {
            total: state.resources.len(),
            destroyed: state
                .resources
                .iter()
                .filter(|r| r.status == Status::Destroyed)
                .count(),
            live: live_names(state),
        },
        services,
        upgrade_actions: availability.actions,
        smoke: SmokeSummary {
            regressions: after
                .as_ref()
                .map(|a| a.regressions.clone())
                .unwrap_or_default(),
            before: before.map(|s| s.counts),
            after: after.map(|s| s.counts),
        },
        rally: RallySummary {
            max_slowdown: rally_after
                .as_ref()
                .or(rally_before.as_ref())
                .map(|r| r.max_slowdown),
            comparisons: rally_after
                .as_ref()
                .map(|r| r.comparisons.clone())
                .unwrap_or_default(),
            before: rally_before.map(|r| r.workloads),
            after: rally_after.map(|r| r.workloads),
        },
        persistent: persistent_summary(persistent),
        leaked: if cleaned {
            live_names(state)
        } else {
            Vec::new()
        },
    }
}

fn live_names(state: &State) -> Vec<String> {
    state
        .live()
        .map(|r| format!("{} {} ({})", r.kind, r.name, r.id))
        .collect()
}

fn persistent_summary(resources: Vec<Persistent>) -> PersistentSummary {
    let count = |o: PersistentOutcome| resources.iter().filter(|r| r.outcome == o).count();
    PersistentSummary {
        created: count(PersistentOutcome::Created),
        intact: count(PersistentOutcome::Intact),
        changed: count(PersistentOutcome::Changed),
        lost: count(PersistentOutcome::Lost),
        resources,
    }
}

fn step_summary(s: &crate::workspace::journal::StepRecord) -> StepSummary {
    StepSummary {
        step: s.label(),
        outcome: s.outcome,
        exit_code: s.exit_code,
        duration_ms: s.duration_ms(),
        attempts: s.attempts.len(),
        error: s.error.clone(),
    }
}

/// Writes `reports/summary.json` and returns its path.
pub fn write(summary: &Summary, workspace: &Path) -> anyhow::Result<PathBuf> {
    let path = workspace.join("reports").join("summary.json");
    let text = serde_json::to_vec_pretty(summary)?;
    crate::workspace::atomic::write(&path, &text)?;
    Ok(path)
}
