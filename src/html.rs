//! The self-contained HTML report (`reports/report.html`): outcome, an SVG timeline of every
//! service's availability with the upgrade actions marked, outage windows, smoke results,
//! persistent resources and steps.
//!
//! Every value reaches the page through [`registry`], whose handlebars escaping is on, and
//! the template has no triple-stash (a unit test checks it): a test name, URL or error can
//! never become markup. The timeline's geometry is computed here, not in JavaScript.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::{DateTime, Utc};
use handlebars::Handlebars;
use serde::Serialize;

use crate::evidence::{
    self, Availability, Counts, Percentiles, Persistent, ProbeRecord, ServiceReport, Smoke,
};
use crate::journal::State;
use crate::report::{self, Summary};

/// The page template, kept in `templates/` and embedded here.
pub const TEMPLATE: &str = include_str!("../templates/report.html.hbs");

/// At most this many buckets per service row, however long the run or fast the probes.
pub const MAX_BUCKETS: usize = 1000;
/// Geometry of the timeline, in SVG user units (the SVG scales to the page width).
const LABEL_W: f64 = 180.0;
const PLOT_W: f64 = 1000.0;
const RIGHT_PAD: f64 = 20.0;
const HEAD_H: f64 = 58.0;
const ROW_H: f64 = 34.0;
const BAR_H: f64 = 20.0;
const AXIS_H: f64 = 30.0;
const LABEL_LANES: usize = 3;

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
pub fn write(workspace: &Path, state: &State) -> anyhow::Result<PathBuf> {
    let summary = report::summarize(state, workspace);
    let availability: Option<Availability> = evidence::read(workspace, "availability.json")?;
    let smoke_after: Option<Smoke> = evidence::read(workspace, "smoke-after.json")?;
    let mut extras = Extras::default();
    let probes = match availability.as_ref().and_then(|a| a.probes_file.as_ref()) {
        Some(file) => read_probes(&probes_path(workspace, file), &mut extras.notes)?,
        None => Vec::new(),
    };
    extras.span = availability.and_then(|a| Some((a.started?, a.ended?)));
    let html = render_page(&summary, &probes, smoke_after.as_ref(), &extras)?;
    let path = workspace.join("reports").join("report.html");
    crate::atomic::write(&path, html.as_bytes())?;
    Ok(path)
}

/// Where the probes file is now: as recorded (absolute, or relative to the directory rollci
/// ran in), else relative to the workspace, else in the workspace's evidence folder (the
/// workspace may have moved, e.g. stashed to another CI agent).
fn probes_path(workspace: &Path, recorded: &Path) -> PathBuf {
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
fn read_probes(path: &Path, notes: &mut Vec<String>) -> anyhow::Result<Vec<ProbeRecord>> {
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

#[derive(Serialize)]
struct ServiceRow {
    name: String,
    url: String,
    probes: u64,
    failures: String,
    availability: String,
    availability_class: &'static str,
    downtime: String,
    budget: String,
    budget_class: &'static str,
    latency: String,
    baseline: String,
}

fn service_row(s: &ServiceReport) -> ServiceRow {
    let failures: Vec<String> = s
        .failures
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(class, n)| format!("{class} {n}"))
        .collect();
    ServiceRow {
        name: s.name.clone(),
        url: s.url.clone(),
        probes: s.probes,
        failures: if failures.is_empty() {
            "none".into()
        } else {
            failures.join(", ")
        },
        availability: format!("{:.2} %", s.availability),
        availability_class: if s.availability >= 100.0 {
            "ok"
        } else {
            "warn"
        },
        downtime: duration(s.downtime_ms as f64),
        budget: match s.budget_ms {
            Some(ms) if s.within_budget => format!("{} (within)", duration(ms as f64)),
            Some(ms) => format!("{} (exceeded)", duration(ms as f64)),
            None => "no budget".into(),
        },
        budget_class: match (s.budget_ms, s.within_budget) {
            (None, _) => "",
            (Some(_), true) => "ok",
            (Some(_), false) => "bad",
        },
        latency: percentiles(s.latency_ms),
        baseline: percentiles(s.baseline_ms),
    }
}

fn percentiles(p: Option<Percentiles>) -> String {
    match p {
        Some(p) => format!("{:.1} / {:.1} / {:.1} ms", p.p50, p.p95, p.p99),
        None => "—".into(),
    }
}

#[derive(Serialize)]
struct WindowRow {
    service: String,
    start: String,
    end: String,
    duration: String,
    action: String,
    class: String,
    failures: u64,
}

fn window_rows(summary: &Summary) -> Vec<WindowRow> {
    let mut rows: Vec<(DateTime<Utc>, WindowRow)> = Vec::new();
    for s in summary.services.values() {
        for w in &s.windows {
            let row = WindowRow {
                service: s.name.clone(),
                start: clock(w.start),
                end: clock(w.end),
                duration: duration(w.duration_ms as f64),
                action: w.action.clone().unwrap_or_else(|| "—".into()),
                class: w.class.clone(),
                failures: w.failures,
            };
            rows.push((w.start, row));
        }
    }
    rows.sort_by_key(|(start, _)| *start);
    rows.into_iter().map(|(_, row)| row).collect()
}

#[derive(Serialize)]
struct SmokeView {
    phases: Vec<PhaseRow>,
    regressions: Vec<TestRow>,
    /// Tests failing after the upgrade that are not regressions (they failed before too).
    other_failures: Vec<TestRow>,
}

#[derive(Serialize)]
struct PhaseRow {
    phase: &'static str,
    counts: Counts,
}

#[derive(Serialize)]
struct TestRow {
    id: String,
    status: String,
    details: Option<String>,
}

fn smoke_view(summary: &Summary, after: Option<&Smoke>) -> SmokeView {
    let phases = [
        ("before", summary.smoke.before),
        ("after", summary.smoke.after),
    ]
    .into_iter()
    .filter_map(|(phase, counts)| {
        Some(PhaseRow {
            phase,
            counts: counts?,
        })
    })
    .collect();
    let find = |id: &str| after.and_then(|s| s.tests.iter().find(|t| t.id == id));
    let regressions = summary
        .smoke
        .regressions
        .iter()
        .map(|id| TestRow {
            id: id.clone(),
            status: find(id).map_or("fail".into(), |t| t.status.clone()),
            details: find(id).and_then(|t| t.details.clone()),
        })
        .collect();
    let other_failures = after
        .into_iter()
        .flat_map(|s| &s.tests)
        .filter(|t| matches!(t.status.as_str(), "fail" | "uxsuccess"))
        .filter(|t| !summary.smoke.regressions.contains(&t.id))
        .map(|t| TestRow {
            id: t.id.clone(),
            status: t.status.clone(),
            details: t.details.clone(),
        })
        .collect();
    SmokeView {
        phases,
        regressions,
        other_failures,
    }
}

#[derive(Serialize)]
struct PersistentRow {
    name: String,
    outcome: String,
    outcome_class: &'static str,
    checksum: String,
    detail: String,
}

fn persistent_row(p: &Persistent) -> PersistentRow {
    PersistentRow {
        name: p.name.clone(),
        outcome: p.outcome.clone(),
        outcome_class: match p.outcome.as_str() {
            "intact" | "created" => "ok",
            "lost" => "bad",
            _ => "warn",
        },
        checksum: p.checksum.clone().unwrap_or_else(|| "—".into()),
        detail: p.detail.clone().unwrap_or_default(),
    }
}

#[derive(Serialize)]
struct StepRow {
    step: String,
    outcome: String,
    outcome_class: &'static str,
    exit_code: String,
    duration: String,
    attempts: usize,
    error: Option<String>,
}

fn step_row(s: &report::StepSummary) -> StepRow {
    let outcome = serde_json::to_value(s.outcome)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    StepRow {
        outcome_class: match outcome.as_str() {
            "passed" => "ok",
            "failed" => "bad",
            _ => "warn",
        },
        outcome,
        step: s.step.clone(),
        exit_code: s.exit_code.map_or("—".into(), |c| c.to_string()),
        duration: s.duration_ms.map_or("—".into(), |ms| duration(ms as f64)),
        attempts: s.attempts,
        error: s.error.clone(),
    }
}

/// `850 ms`, `12.40 s`, `3 min 05 s`.
fn duration(ms: f64) -> String {
    if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else if ms < 60_000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else {
        let s = (ms / 1000.0).round() as u64;
        format!("{} min {:02} s", s / 60, s % 60)
    }
}

/// Wall-clock time of day, to the millisecond (the header gives the date).
fn clock(t: DateTime<Utc>) -> String {
    t.format("%H:%M:%S%.3f").to_string()
}

/// The availability timeline: one row per service, upgrade actions as bands across all rows.
#[derive(Debug, Serialize)]
struct Timeline {
    width: f64,
    height: f64,
    plot_x: f64,
    plot_w: f64,
    plot_top: f64,
    plot_bottom: f64,
    plot_h: f64,
    row_h: f64,
    tick_y2: f64,
    tick_text_y: f64,
    start: String,
    end: String,
    span: String,
    rows: Vec<Row>,
    actions: Vec<Band>,
    ticks: Vec<Tick>,
}

#[derive(Debug, Serialize)]
struct Row {
    name: String,
    url: String,
    y: f64,
    text_y: f64,
    bar_y: f64,
    bar_h: f64,
    probes: usize,
    segments: Vec<Mark>,
    windows: Vec<Mark>,
}

/// A horizontal stretch of a row: `x`, `w` in user units, a CSS class and a tooltip.
#[derive(Debug, Serialize)]
struct Mark {
    x: f64,
    w: f64,
    class: &'static str,
    title: String,
}

#[derive(Debug, Serialize)]
struct Band {
    name: String,
    x: f64,
    w: f64,
    label_y: f64,
    anchor: &'static str,
    title: String,
}

#[derive(Debug, Serialize)]
struct Tick {
    x: f64,
    label: String,
}

/// Maps instants onto the plot's x axis.
#[derive(Debug, Clone, Copy)]
struct Scale {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

impl Scale {
    fn span_ms(&self) -> f64 {
        ((self.end - self.start).num_milliseconds() as f64).max(1.0)
    }
    /// Fraction of the span (clamped to 0..=1).
    fn frac(&self, t: DateTime<Utc>) -> f64 {
        ((t - self.start).num_milliseconds() as f64 / self.span_ms()).clamp(0.0, 1.0)
    }
    fn x(&self, t: DateTime<Utc>) -> f64 {
        round1(LABEL_W + self.frac(t) * PLOT_W)
    }
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

impl Timeline {
    /// `None` when there is nothing to draw (no service, or no instant to place it on).
    fn build(
        summary: &Summary,
        probes: &[ProbeRecord],
        span: Option<(DateTime<Utc>, DateTime<Utc>)>,
    ) -> Option<Timeline> {
        let names = service_names(summary, probes);
        if names.is_empty() {
            return None;
        }
        let scale = data_scale(summary, probes, span)?;
        let mut by_service: BTreeMap<&str, Vec<&ProbeRecord>> = BTreeMap::new();
        for p in probes {
            by_service.entry(&p.service).or_default().push(p);
        }
        let rows: Vec<Row> = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let probes = by_service.get(name.as_str()).map_or(&[][..], Vec::as_slice);
                row(i, name, summary.services.get(name), probes, scale)
            })
            .collect();
        let plot_bottom = HEAD_H + rows.len() as f64 * ROW_H;
        Some(Timeline {
            width: LABEL_W + PLOT_W + RIGHT_PAD,
            height: plot_bottom + AXIS_H,
            plot_x: LABEL_W,
            plot_w: PLOT_W,
            plot_top: HEAD_H,
            plot_bottom,
            plot_h: plot_bottom - HEAD_H,
            row_h: ROW_H,
            tick_y2: plot_bottom + 5.0,
            tick_text_y: plot_bottom + 18.0,
            start: scale.start.format("%Y-%m-%d %H:%M:%S%.3f UTC").to_string(),
            end: scale.end.format("%Y-%m-%d %H:%M:%S%.3f UTC").to_string(),
            span: duration(scale.span_ms()),
            actions: bands(summary, scale),
            ticks: ticks(scale),
            rows,
        })
    }
}

/// Services of the summary first (by name), then any seen only in the probes.
fn service_names(summary: &Summary, probes: &[ProbeRecord]) -> Vec<String> {
    let mut names: Vec<String> = summary.services.keys().cloned().collect();
    for p in probes {
        if !names.contains(&p.service) {
            names.push(p.service.clone());
        }
    }
    names
}

/// The span to draw: availability's `started`..`ended`, widened to cover every recorded
/// instant (so nothing falls off the edge). `None` when there is no instant at all.
fn data_scale(
    summary: &Summary,
    probes: &[ProbeRecord],
    span: Option<(DateTime<Utc>, DateTime<Utc>)>,
) -> Option<Scale> {
    let mut instants: Vec<DateTime<Utc>> = probes.iter().map(|p| p.t).collect();
    for s in summary.services.values() {
        instants.extend(s.windows.iter().flat_map(|w| [w.start, w.end]));
    }
    for a in &summary.upgrade_actions {
        instants.extend(std::iter::once(a.start).chain(a.end));
    }
    if let Some((start, end)) = span {
        instants.extend([start, end]);
    }
    let start = *instants.iter().min()?;
    let mut end = *instants.iter().max()?;
    if end <= start {
        end = start + chrono::Duration::seconds(1);
    }
    Some(Scale { start, end })
}

fn row(
    i: usize,
    name: &str,
    report: Option<&ServiceReport>,
    probes: &[&ProbeRecord],
    scale: Scale,
) -> Row {
    let y = HEAD_H + i as f64 * ROW_H;
    let bar_y = y + (ROW_H - BAR_H) / 2.0;
    let windows = report
        .into_iter()
        .flat_map(|r| &r.windows)
        .map(|w| {
            let x = scale.x(w.start);
            Mark {
                x,
                w: (scale.x(w.end) - x).max(2.0),
                class: "window",
                title: format!(
                    "outage {} → {} ({}), {} failed probes, mostly {}, during {}",
                    clock(w.start),
                    clock(w.end),
                    duration(w.duration_ms as f64),
                    w.failures,
                    w.class,
                    w.action.as_deref().unwrap_or("no action")
                ),
            }
        })
        .collect();
    Row {
        name: name.to_string(),
        url: report.map(|r| r.url.clone()).unwrap_or_default(),
        y,
        text_y: y + ROW_H / 2.0 + 4.0,
        bar_y,
        bar_h: BAR_H,
        probes: probes.len(),
        segments: segments(probes, scale),
        windows,
    }
}

/// The probes of one row as at most [`MAX_BUCKETS`] buckets. A probe's result holds until
/// the next probe (up to five typical intervals, so a pause in probing shows as no data);
/// a bucket is failed if any result covering it failed, and equal neighbours merge into one
/// mark so a long run stays a handful of rects.
fn segments(probes: &[&ProbeRecord], scale: Scale) -> Vec<Mark> {
    let n = MAX_BUCKETS;
    let mut sorted = probes.to_vec();
    sorted.sort_by_key(|p| p.t);
    let typical = typical_interval(&sorted);
    let mut cover: Vec<Option<&'static str>> = vec![None; n];
    let mut counts = vec![(0u64, 0u64); n];
    for (i, p) in sorted.iter().enumerate() {
        let until = sorted
            .get(i + 1)
            .map_or(p.t + typical, |next| next.t.min(p.t + typical * 5));
        let first = ((scale.frac(p.t) * n as f64) as usize).min(n - 1);
        let last = ((scale.frac(until) * n as f64).ceil() as usize).clamp(first + 1, n);
        let ok = p.outcome == "ok";
        let slot = &mut counts[first];
        if ok {
            slot.0 += 1
        } else {
            slot.1 += 1
        }
        for c in &mut cover[first..last] {
            *c = if ok && *c != Some("failed") {
                Some("ok")
            } else {
                Some("failed")
            };
        }
    }
    let mut marks = Vec::new();
    let mut i = 0;
    while i < n {
        let mut j = i + 1;
        while j < n && cover[j] == cover[i] {
            j += 1;
        }
        if let Some(class) = cover[i] {
            marks.push(mark(&counts[i..j], i, j, n, class, scale));
        }
        i = j;
    }
    marks
}

/// The median gap between probes (one second when there are too few to tell).
fn typical_interval(sorted: &[&ProbeRecord]) -> chrono::Duration {
    let mut gaps: Vec<chrono::Duration> = sorted.windows(2).map(|w| w[1].t - w[0].t).collect();
    gaps.sort();
    gaps.get(gaps.len() / 2)
        .copied()
        .filter(|g| *g > chrono::Duration::zero())
        .unwrap_or(chrono::Duration::seconds(1))
}

fn mark(
    run: &[(u64, u64)],
    i: usize,
    j: usize,
    n: usize,
    class: &'static str,
    scale: Scale,
) -> Mark {
    let at = |k: usize| {
        scale.start + chrono::Duration::milliseconds((scale.span_ms() * k as f64 / n as f64) as i64)
    };
    let (ok, failed) = run.iter().fold((0, 0), |(a, b), (o, f)| (a + o, b + f));
    let x = scale.x(at(i));
    Mark {
        x,
        w: (scale.x(at(j)) - x).max(1.0),
        class,
        title: format!(
            "{} → {}: {} probes, {} failed",
            clock(at(i)),
            clock(at(j)),
            ok + failed,
            failed
        ),
    }
}

/// Upgrade actions as bands; labels cycle through lanes above the plot so neighbours'
/// names do not overlap.
fn bands(summary: &Summary, scale: Scale) -> Vec<Band> {
    summary
        .upgrade_actions
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let x = scale.x(a.start);
            let end = a.end.unwrap_or(scale.end);
            Band {
                name: a.name.clone(),
                x,
                w: (scale.x(end) - x).max(1.0),
                label_y: 14.0 + (i % LABEL_LANES) as f64 * 14.0,
                anchor: if x > LABEL_W + PLOT_W * 0.8 {
                    "end"
                } else {
                    "start"
                },
                title: match a.end {
                    Some(e) => format!(
                        "{}: {} → {} ({})",
                        a.name,
                        clock(a.start),
                        clock(e),
                        duration((e - a.start).num_milliseconds() as f64)
                    ),
                    None => format!("{}: from {} (never ended)", a.name, clock(a.start)),
                },
            }
        })
        .collect()
}

/// Axis ticks at a round step giving at most ten of them, labelled from the start.
fn ticks(scale: Scale) -> Vec<Tick> {
    const STEPS_S: [u64; 14] = [
        1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200,
    ];
    let span_s = scale.span_ms() / 1000.0;
    let step = STEPS_S
        .into_iter()
        .find(|s| span_s / *s as f64 <= 10.0)
        .unwrap_or(7200);
    (0..)
        .map(|k| k * step)
        .take_while(|s| *s as f64 <= span_s)
        .map(|s| Tick {
            x: round1(LABEL_W + s as f64 * 1000.0 / scale.span_ms() * PLOT_W),
            label: offset_label(s),
        })
        .collect()
}

/// `+0s`, `+45s`, `+2m`, `+1m30s`, `+1h5m`.
fn offset_label(s: u64) -> String {
    match (s / 3600, s % 3600 / 60, s % 60) {
        (0, 0, sec) => format!("+{sec}s"),
        (0, m, 0) => format!("+{m}m"),
        (0, m, sec) => format!("+{m}m{sec}s"),
        (h, 0, _) => format!("+{h}h"),
        (h, m, _) => format!("+{h}h{m}m"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::{ActionSpan, Window};
    use crate::report::{PersistentSummary, ResourceSummary, SmokeSummary};

    fn t(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_700_000_000_000 + ms).unwrap()
    }

    fn probe(service: &str, ms: i64, ok: bool) -> ProbeRecord {
        ProbeRecord {
            service: service.into(),
            t: t(ms),
            latency_ms: 3.0,
            outcome: if ok { "ok" } else { "refused" }.into(),
            status: None,
            error: None,
            action: None,
        }
    }

    fn summary(services: Vec<ServiceReport>, actions: Vec<ActionSpan>) -> Summary {
        Summary {
            summary_version: 1,
            run_id: "run-1".into(),
            lab: "demo".into(),
            from_release: "A".into(),
            to_release: "B".into(),
            outcome: "passed".into(),
            flow_complete: true,
            incomplete: Vec::new(),
            steps: Vec::new(),
            resources: ResourceSummary {
                total: 0,
                destroyed: 0,
                live: Vec::new(),
            },
            services: services.into_iter().map(|s| (s.name.clone(), s)).collect(),
            upgrade_actions: actions,
            smoke: SmokeSummary::default(),
            persistent: PersistentSummary::default(),
            leaked: Vec::new(),
        }
    }

    fn service(name: &str, windows: Vec<Window>) -> ServiceReport {
        ServiceReport {
            name: name.into(),
            url: format!("http://127.0.0.1/{name}?a=\"&<>"),
            windows,
            ..ServiceReport::default()
        }
    }

    #[test]
    fn template_never_bypasses_escaping() {
        assert!(
            !TEMPLATE.contains("{{{"),
            "triple-stash bypasses HTML escaping"
        );
        assert!(!TEMPLATE.contains("{{&"), "`{{&` bypasses HTML escaping");
        for external in [
            "src=\"http",
            "href=\"http",
            "@import",
            "url(http",
            "<script",
        ] {
            assert!(!TEMPLATE.contains(external), "external asset {external:?}");
        }
    }

    #[test]
    fn hostile_values_are_escaped_everywhere() {
        let hostile = "<script>alert(1)</script>\"'&";
        let mut s = summary(vec![service(hostile, Vec::new())], Vec::new());
        s.smoke.regressions.push(hostile.into());
        s.run_id = hostile.into();
        let html = render(&s, &[probe(hostile, 0, true)], None).unwrap();
        assert!(!html.contains("<script>alert"), "unescaped value in page");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("&quot;&amp;&lt;&gt;"), "URL not escaped");
    }

    #[test]
    fn no_services_shows_a_message_instead_of_a_timeline() {
        let html = render(&summary(Vec::new(), Vec::new()), &[], None).unwrap();
        assert!(!html.contains("<svg"));
        assert!(html.contains("No availability probes were recorded"));
    }

    #[test]
    fn long_fast_run_is_bucketed_and_merged() {
        // 20 minutes at 50 ms: 24,000 probes, one short outage in the middle.
        let probes: Vec<ProbeRecord> = (0..24_000)
            .map(|i| probe("api", i * 50, !(12_000..12_040).contains(&i)))
            .collect();
        let refs: Vec<&ProbeRecord> = probes.iter().collect();
        let scale = Scale {
            start: t(0),
            end: t(24_000 * 50),
        };
        let marks = segments(&refs, scale);
        let classes: Vec<&str> = marks.iter().map(|m| m.class).collect();
        assert_eq!(classes, ["ok", "failed", "ok"]);
        assert!(marks[1].title.contains("40 failed"), "{}", marks[1].title);
        let html = render(&summary(Vec::new(), Vec::new()), &probes, None).unwrap();
        assert!(html.len() < 60_000, "page is {} bytes", html.len());
    }

    #[test]
    fn buckets_never_exceed_the_cap() {
        let probes: Vec<ProbeRecord> = (0..5_000).map(|i| probe("x", i, i % 2 == 0)).collect();
        let refs: Vec<&ProbeRecord> = probes.iter().collect();
        let marks = segments(
            &refs,
            Scale {
                start: t(0),
                end: t(5_000),
            },
        );
        assert!(marks.len() <= MAX_BUCKETS, "{} marks", marks.len());
    }

    #[test]
    fn windows_and_actions_land_on_the_axis() {
        let window = Window {
            start: t(4_000),
            end: t(6_000),
            duration_ms: 2_000,
            action: Some("node2".into()),
            failures: 7,
            class: "refused".into(),
        };
        let actions = vec![ActionSpan {
            name: "node2".into(),
            start: t(2_000),
            end: Some(t(8_000)),
        }];
        let s = summary(vec![service("api", vec![window])], actions);
        let probes = [probe("api", 0, true), probe("api", 10_000, true)];
        let tl = Timeline::build(&s, &probes, None).unwrap();
        let w = &tl.rows[0].windows[0];
        assert_eq!((w.x, w.w), (LABEL_W + 400.0, 200.0));
        assert_eq!((tl.actions[0].x, tl.actions[0].w), (LABEL_W + 200.0, 600.0));
        let labels: Vec<&str> = tl.ticks.iter().map(|t| t.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "+0s", "+1s", "+2s", "+3s", "+4s", "+5s", "+6s", "+7s", "+8s", "+9s", "+10s"
            ]
        );
    }

    #[test]
    fn availability_span_widens_the_axis() {
        let s = summary(vec![service("api", Vec::new())], Vec::new());
        let tl = Timeline::build(&s, &[probe("api", 5_000, true)], Some((t(0), t(10_000))));
        assert_eq!(tl.unwrap().rows[0].segments[0].x, LABEL_W + 500.0);
    }

    #[test]
    fn truncated_last_probe_line_is_noted_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("probes.jsonl");
        let line = serde_json::to_string(&probe("api", 0, true)).unwrap();
        std::fs::write(&path, format!("{line}\n{{\"service\":\"ap")).unwrap();
        let mut notes = Vec::new();
        assert_eq!(read_probes(&path, &mut notes).unwrap().len(), 1);
        assert_eq!(notes.len(), 1);
        std::fs::write(&path, format!("{{oops\n{line}\n")).unwrap();
        let err = read_probes(&path, &mut notes).unwrap_err();
        assert!(format!("{err:#}").contains("line 1"), "{err:#}");
    }

    #[test]
    fn probes_file_is_found_after_the_workspace_moved() {
        let dir = tempfile::tempdir().unwrap();
        let moved = dir.path().join("evidence/probes.jsonl");
        std::fs::create_dir_all(moved.parent().unwrap()).unwrap();
        std::fs::write(&moved, "").unwrap();
        let recorded = Path::new("/old/agent/ws/evidence/probes.jsonl");
        assert_eq!(probes_path(dir.path(), recorded), moved);
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(850.0), "850 ms");
        assert_eq!(duration(12_400.0), "12.40 s");
        assert_eq!(duration(185_000.0), "3 min 05 s");
        assert_eq!(offset_label(90), "+1m30s");
    }
}
