//! The run's summary (`reports/summary.json`), built from the journal alone so it can be
//! written after any failure. Later reporters (JUnit, HTML, Elasticsearch) read the same
//! [`Summary`].

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;

use crate::cleanup;
use crate::journal::{Outcome, State, Status};

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

/// Summarizes a journal.
pub fn summarize(state: &State) -> Summary {
    let incomplete = cleanup::incomplete(state);
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
    Summary {
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
            live: state
                .live()
                .map(|r| format!("{} {} ({})", r.kind, r.name, r.id))
                .collect(),
        },
    }
}

fn step_summary(s: &crate::journal::StepRecord) -> StepSummary {
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
pub fn write(state: &State, workspace: &Path) -> anyhow::Result<PathBuf> {
    let dir = workspace.join("reports");
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("failed to create `{}`", dir.display()))?;
    let path = dir.join("summary.json");
    let text = serde_json::to_string_pretty(&summarize(state))?;
    let mut tmp = tempfile::NamedTempFile::new_in(&dir)?;
    std::io::Write::write_all(&mut tmp, text.as_bytes())?;
    tmp.persist(&path)
        .with_context(|| format!("failed to write `{}`", path.display()))?;
    Ok(path)
}
