//! The SVG timeline's geometry: a row per service across the run, outage windows and
//! upgrade actions marked, a time axis.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::view::{clock, duration};
use crate::reports::summary::Summary;
use crate::workspace::evidence::{ProbeRecord, ServiceReport};

/// At most this many buckets per service row, however long the run or fast the probes.
pub const MAX_BUCKETS: usize = 1000;
/// Geometry of the timeline, in SVG user units (the SVG scales to the page width).
pub(super) const LABEL_W: f64 = 180.0;
pub(super) const PLOT_W: f64 = 1000.0;
pub(super) const RIGHT_PAD: f64 = 20.0;
pub(super) const HEAD_H: f64 = 58.0;
pub(super) const ROW_H: f64 = 34.0;
pub(super) const BAR_H: f64 = 20.0;
pub(super) const AXIS_H: f64 = 30.0;
pub(super) const LABEL_LANES: usize = 3;

/// The availability timeline: one row per service, upgrade actions as bands across all rows.
#[derive(Debug, Serialize)]
pub(super) struct Timeline {
    pub(super) width: f64,
    pub(super) height: f64,
    pub(super) plot_x: f64,
    pub(super) plot_w: f64,
    pub(super) plot_top: f64,
    pub(super) plot_bottom: f64,
    pub(super) plot_h: f64,
    pub(super) row_h: f64,
    tick_y2: f64,
    pub(super) tick_text_y: f64,
    pub(super) start: String,
    pub(super) end: String,
    pub(super) span: String,
    pub(super) rows: Vec<Row>,
    pub(super) actions: Vec<Band>,
    pub(super) ticks: Vec<Tick>,
}

#[derive(Debug, Serialize)]
pub(super) struct Row {
    pub(super) name: String,
    pub(super) url: String,
    pub(super) y: f64,
    pub(super) text_y: f64,
    pub(super) bar_y: f64,
    pub(super) bar_h: f64,
    pub(super) probes: usize,
    pub(super) segments: Vec<Mark>,
    pub(super) windows: Vec<Mark>,
}

/// A horizontal stretch of a row: `x`, `w` in user units, a CSS class and a tooltip.
#[derive(Debug, Serialize)]
pub(super) struct Mark {
    pub(super) x: f64,
    pub(super) w: f64,
    pub(super) class: &'static str,
    pub(super) title: String,
}

#[derive(Debug, Serialize)]
pub(super) struct Band {
    pub(super) name: String,
    pub(super) x: f64,
    pub(super) w: f64,
    pub(super) label_y: f64,
    pub(super) anchor: &'static str,
    pub(super) title: String,
}

#[derive(Debug, Serialize)]
pub(super) struct Tick {
    pub(super) x: f64,
    pub(super) label: String,
}

/// Maps instants onto the plot's x axis.
#[derive(Debug, Clone, Copy)]
pub(super) struct Scale {
    pub(super) start: DateTime<Utc>,
    pub(super) end: DateTime<Utc>,
}

impl Scale {
    pub(super) fn span_ms(&self) -> f64 {
        ((self.end - self.start).num_milliseconds() as f64).max(1.0)
    }
    /// Fraction of the span (clamped to 0..=1).
    pub(super) fn frac(&self, t: DateTime<Utc>) -> f64 {
        ((t - self.start).num_milliseconds() as f64 / self.span_ms()).clamp(0.0, 1.0)
    }
    pub(super) fn x(&self, t: DateTime<Utc>) -> f64 {
        round1(LABEL_W + self.frac(t) * PLOT_W)
    }
}

pub(super) fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

impl Timeline {
    /// `None` when there is nothing to draw (no service, or no instant to place it on).
    pub(super) fn build(
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
pub(super) fn service_names(summary: &Summary, probes: &[ProbeRecord]) -> Vec<String> {
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
pub(super) fn data_scale(
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

pub(super) fn row(
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
                    w.class_text(),
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
pub(super) fn segments(probes: &[&ProbeRecord], scale: Scale) -> Vec<Mark> {
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
pub(super) fn typical_interval(sorted: &[&ProbeRecord]) -> chrono::Duration {
    let mut gaps: Vec<chrono::Duration> = sorted.windows(2).map(|w| w[1].t - w[0].t).collect();
    gaps.sort();
    gaps.get(gaps.len() / 2)
        .copied()
        .filter(|g| *g > chrono::Duration::zero())
        .unwrap_or(chrono::Duration::seconds(1))
}

pub(super) fn mark(
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
pub(super) fn bands(summary: &Summary, scale: Scale) -> Vec<Band> {
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
pub(super) fn ticks(scale: Scale) -> Vec<Tick> {
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
pub(super) fn offset_label(s: u64) -> String {
    match (s / 3600, s % 3600 / 60, s % 60) {
        (0, 0, sec) => format!("+{sec}s"),
        (0, m, 0) => format!("+{m}m"),
        (0, m, sec) => format!("+{m}m{sec}s"),
        (h, 0, _) => format!("+{h}h"),
        (h, m, _) => format!("+{h}h{m}m"),
    }
}
