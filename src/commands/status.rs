//! `rollci status`: what exists, which steps ran, how they ended and how long they took.

use std::fmt::Write;

use super::lab;
use crate::cli::Global;
use crate::exit;
use crate::reports::summary;
use crate::workspace::journal::State;

/// `rollci status [--json]`.
pub fn run(g: &Global, json: bool) -> anyhow::Result<u8> {
    let state = lab::read_state(g)?;
    let workspace = g.workspace();
    if json {
        let value = self::json(&state, &workspace);
        crate::say!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        crate::show!("{}", table(&state, &workspace));
    }
    Ok(exit::OK)
}

/// The status as JSON: the summary plus every resource.
pub fn json(state: &State, workspace: &std::path::Path) -> serde_json::Value {
    serde_json::json!({
        "summary": summary::summarize(state, workspace),
        "hosts": state.hosts,
        "resources": state.resources,
    })
}

/// The status as a table for people.
pub fn table(state: &State, workspace: &std::path::Path) -> String {
    let summary = summary::summarize(state, workspace);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "lab {}  run {}  {} -> {}  outcome: {}",
        state.lab, state.run_id, state.from_release, state.to_release, summary.outcome
    );
    let _ = writeln!(
        out,
        "\nSTEP              OUTCOME   EXIT  ATTEMPTS  DURATION"
    );
    for s in &summary.steps {
        let secs = s
            .duration_ms
            .map(|ms| format!("{:.1}s", ms as f64 / 1000.0));
        let _ = writeln!(
            out,
            "{:<17} {:<9} {:<5} {:<9} {}",
            s.step,
            format!("{:?}", s.outcome).to_lowercase(),
            s.exit_code
                .map(|c| c.to_string())
                .unwrap_or_else(|| "-".into()),
            s.attempts,
            secs.unwrap_or_else(|| "-".into())
        );
    }
    let _ = writeln!(out, "\nRESOURCE  KIND     STATUS     LAYER      NAME");
    for r in &state.resources {
        let _ = writeln!(
            out,
            "{:<9} {:<8} {:<10} {:<10} {}",
            r.id,
            r.kind,
            format!("{:?}", r.status).to_lowercase(),
            format!("{:?}", r.layer).to_lowercase(),
            r.name
        );
    }
    if !summary.incomplete.is_empty() {
        let _ = writeln!(out, "\nincomplete flow: {}", summary.incomplete.join(", "));
    }
    out
}
