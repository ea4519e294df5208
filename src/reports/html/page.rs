//! The report page: the evidence it reads (the summary, the probes file, the smoke results
//! after the upgrade) and its rendering through the template.

use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::{DateTime, Utc};
use handlebars::Handlebars;
use serde::Serialize;

use crate::reports::summary::Summary;
use crate::workspace::evidence::{self, Availability, ProbeRecord, Smoke};

use super::timeline::Timeline;
use super::view::*;

/// The report page's template, kept in `templates/` and embedded here.
pub const TEMPLATE: &str = include_str!("../../../templates/report.html.hbs");

/// A handlebars registry for HTML: escaping on, strict variables, the report template.
pub fn registry() -> anyhow::Result<Handlebars<'static>> {
    let mut hb = Handlebars::new();
    hb.register_escape_fn(handlebars::html_escape);
    hb.set_strict_mode(true);
    hb.register_template_string("report", TEMPLATE)
        .context("failed to parse template `report.html.hbs`")?;
    Ok(hb)
}

/// Renders the report page; the timeline spans the data (probes, windows, actions).
pub fn render(
    summary: &Summary,
    probes: &[ProbeRecord],
    smoke_after: Option<&Smoke>,
) -> anyhow::Result<String> {
    render_page(summary, probes, smoke_after, &Extras::default())
}

/// What [`write`] knows beyond [`render`]'s arguments.
#[derive(Default)]
struct Extras {
    /// Availability's `started`/`ended`, when recorded.
    span: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// Problems met reading the evidence, shown on the page.
    notes: Vec<String>,
}

/// Writes `<workspace>/reports/report.html` from the journal and the evidence files.
pub fn write(workspace: &Path, summary: &Summary) -> anyhow::Result<PathBuf> {
    let availability: Option<Availability> = evidence::read(workspace, "availability.json")?;
    let smoke_after: Option<Smoke> = evidence::read(workspace, "smoke-after.json")?;
    let mut extras = Extras::default();
    let probes = match availability.as_ref().and_then(|a| a.probes_file.as_ref()) {
        Some(file) => read_probes(&probes_path(workspace, file), &mut extras.notes)?,
        None => Vec::new(),
    };
    extras.span = availability.and_then(|a| Some((a.started?, a.ended?)));
    let html = render_page(summary, &probes, smoke_after.as_ref(), &extras)?;
    let path = workspace.join("reports").join("report.html");
    crate::workspace::atomic::write(&path, html.as_bytes())?;
    Ok(path)
}

/// Where the probes file is now: as recorded (absolute, or relative to the directory rollci
/// ran in), else relative to the workspace, else in the workspace's evidence folder (the
/// workspace may have moved, e.g. stashed to another CI agent).
pub(super) fn probes_path(workspace: &Path, recorded: &Path) -> PathBuf {
    let moved = recorded
        .file_name()
        .map(|name| evidence::dir(workspace).join(name));
    [
        Some(recorded.to_path_buf()),
        Some(workspace.join(recorded)),
        moved,
    ]
    .into_iter()
    .flatten()
    .find(|p| p.exists())
    .unwrap_or_else(|| recorded.to_path_buf())
}

/// Reads the probes JSON-lines file. A missing file or a last line cut short (the prober
/// was killed mid-write) is noted on the page; a bad line elsewhere is an error.
pub(super) fn read_probes(
    path: &Path,
    notes: &mut Vec<String>,
) -> anyhow::Result<Vec<ProbeRecord>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            notes.push(format!(
                "The probes file `{}` is missing: the timeline shows outage windows only.",
                path.display()
            ));
            return Ok(Vec::new());
        }
        Err(e) => return Err(e).with_context(|| format!("failed to read `{}`", path.display())),
    };
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut probes = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        match serde_json::from_str(line) {
            Ok(p) => probes.push(p),
            Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => notes.push(format!(
                "The last line of `{}` was cut short and is ignored.",
                path.display()
            )),
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("failed to parse `{}` line {}", path.display(), i + 1)
                });
            }
        }
    }
    Ok(probes)
}

fn render_page(
    summary: &Summary,
    probes: &[ProbeRecord],
    smoke_after: Option<&Smoke>,
    extras: &Extras,
) -> anyhow::Result<String> {
    let services: Vec<ServiceRow> = summary.services.values().map(service_row).collect();
    let windows = window_rows(summary);
    let smoke = smoke_view(summary, smoke_after);
    let counts = PageCounts {
        services: services.len(),
        windows: windows.len(),
        regressions: smoke.regressions.len(),
        other_failures: smoke.other_failures.len(),
        leaked: summary.leaked.len(),
    };
    let page = Page {
        title: format!("rollci {} — {}", summary.outcome, summary.run_id),
        generated: Utc::now().format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        badge: badge(&summary.outcome),
        summary,
        notes: &extras.notes,
        services,
        windows,
        phases: phase_table(summary),
        rally: rally_rows(summary),
        timeline: Timeline::build(summary, probes, extras.span),
        smoke,
        steps: summary.steps.iter().map(step_row).collect(),
        persistent: summary
            .persistent
            .resources
            .iter()
            .map(persistent_row)
            .collect(),
        counts,
    };
    registry()?
        .render("report", &page)
        .context("failed to render template `report.html.hbs`")
}

/// Everything the template reads; values are preformatted strings where formatting matters.
#[derive(Serialize)]
struct Page<'a> {
    title: String,
    generated: String,
    badge: &'static str,
    summary: &'a Summary,
    notes: &'a [String],
    services: Vec<ServiceRow>,
    windows: Vec<WindowRow>,
    phases: Option<PhaseTable>,
    rally: Vec<RallyRow>,
    timeline: Option<Timeline>,
    smoke: SmokeView,
    steps: Vec<StepRow>,
    persistent: Vec<PersistentRow>,
    counts: PageCounts,
}

/// The numbers of the header's cards (strict handlebars has no `.length`).
#[derive(Serialize)]
struct PageCounts {
    services: usize,
    windows: usize,
    regressions: usize,
    other_failures: usize,
    leaked: usize,
}

/// CSS class of the outcome badge.
fn badge(outcome: &str) -> &'static str {
    match outcome {
        "passed" => "ok",
        "failed" => "bad",
        _ => "warn",
    }
}
