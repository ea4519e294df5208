//! The reports written from the journal and the evidence: the summary model, JUnit, HTML
//! and Elasticsearch documents.

pub mod es;
pub mod html;
pub mod junit;
pub mod phases;
pub mod summary;

use std::path::{Path, PathBuf};

use crate::workspace::journal::State;

/// Rewrites every local report of the workspace from the journal and the evidence:
/// `summary.json`, the JUnit files and `report.html`. Callers refresh after each step, so a
/// build that stops anywhere still has its reports.
pub fn refresh(state: &State, workspace: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let summary = summary::summarize(state, workspace);
    let mut written = vec![summary::write(&summary, workspace)?];
    written.extend(junit::write_all(workspace)?);
    written.push(html::write(workspace, &summary)?);
    Ok(written)
}
