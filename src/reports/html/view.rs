//! The page's view model: rows of the service, window, smoke, persistent and step tables,
//! every value already formatted for people.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::reports::summary::{self, Summary};
use crate::workspace::evidence::{
    Counts, Percentiles, Persistent, PersistentOutcome, RallyWorkload, ServiceReport, Smoke,
};

#[derive(Serialize)]
pub(super) struct ServiceRow {
    pub(super) name: String,
    pub(super) url: String,
    pub(super) probes: u64,
    pub(super) failures: String,
    pub(super) connection: String,
    pub(super) availability: String,
    pub(super) availability_class: &'static str,
    pub(super) downtime: String,
    pub(super) budget: String,
    pub(super) budget_class: &'static str,
    pub(super) latency: String,
    pub(super) baseline: String,
}

pub(super) fn service_row(s: &ServiceReport) -> ServiceRow {
    ServiceRow {
        name: s.name.clone(),
        url: s.url.clone(),
        connection: s.connection.clone().unwrap_or_default(),
        probes: s.probes,
        failures: s.failure_text(),
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

pub(super) fn percentiles(p: Option<Percentiles>) -> String {
    match p {
        Some(p) => format!("{:.1} / {:.1} / {:.1} ms", p.p50, p.p95, p.p99),
        None => "—".into(),
    }
}

#[derive(Serialize)]
pub(super) struct WindowRow {
    pub(super) service: String,
    pub(super) start: String,
    pub(super) end: String,
    pub(super) duration: String,
    pub(super) action: String,
    pub(super) class: String,
    pub(super) failures: u64,
    pub(super) first_error: String,
}

/// Rally's workloads, before against after.
#[derive(Serialize)]
pub(super) struct RallyRow {
    pub(super) workload: String,
    pub(super) iterations: String,
    pub(super) metric: String,
    pub(super) before: String,
    pub(super) after: String,
    pub(super) ratio: String,
    pub(super) verdict: &'static str,
    pub(super) class: &'static str,
}

pub(super) fn rally_rows(summary: &Summary) -> Vec<RallyRow> {
    let r = &summary.rally;
    let before = r.before.as_deref().unwrap_or_default();
    let after = r.after.as_deref().unwrap_or_default();
    let mut names: Vec<&str> = before.iter().map(|w| w.name.as_str()).collect();
    names.extend(
        after
            .iter()
            .map(|w| w.name.as_str())
            .filter(|n| !before.iter().any(|b| b.name == *n)),
    );
    let ms = |v: Option<f64>| v.map_or("—".to_string(), duration);
    let counts = |w: Option<&RallyWorkload>| {
        w.map_or("—".to_string(), |w| {
            format!(
                "{}/{}",
                w.iterations - w.failed.min(w.iterations),
                w.iterations
            )
        })
    };
    names
        .into_iter()
        .map(|name| {
            let b = before.iter().find(|w| w.name == name);
            let a = after.iter().find(|w| w.name == name);
            let c = r.comparisons.iter().find(|c| c.workload == name);
            let failed = [b, a]
                .into_iter()
                .flatten()
                .any(|w| w.failed > 0 || !w.pass_sla);
            let (verdict, class) = match (failed, c.is_some_and(|c| c.slow)) {
                (true, _) => ("iterations failed", "bad"),
                (false, true) => ("slower than allowed", "bad"),
                _ if a.is_none() && r.after.is_some() => ("missing after", "bad"),
                _ => ("ok", "ok"),
            };
            let metric = c.map_or("median", |c| c.metric.as_str());
            let pick = |w: Option<&RallyWorkload>| w.and_then(|w| w.total.get(metric));
            RallyRow {
                workload: name.to_string(),
                iterations: format!("{} → {}", counts(b), counts(a)),
                metric: metric.to_string(),
                before: ms(pick(b)),
                after: ms(pick(a)),
                ratio: c
                    .and_then(|c| c.ratio)
                    .map_or("—".into(), |r| format!("×{r:.2}")),
                verdict,
                class,
            }
        })
        .collect()
}

/// The per-phase downtime matrix: one row per upgrade action, one column per service.
#[derive(Serialize)]
pub(super) struct PhaseTable {
    pub(super) services: Vec<String>,
    pub(super) rows: Vec<PhaseLine>,
}

#[derive(Serialize)]
pub(super) struct PhaseLine {
    pub(super) action: String,
    pub(super) duration: String,
    pub(super) cells: Vec<PhaseCell>,
}

#[derive(Serialize)]
pub(super) struct PhaseCell {
    pub(super) text: String,
    pub(super) class: &'static str,
}

pub(super) fn phase_table(summary: &Summary) -> Option<PhaseTable> {
    if summary.phases.is_empty() || summary.services.is_empty() {
        return None;
    }
    let services: Vec<String> = summary.services.keys().cloned().collect();
    let rows = summary
        .phases
        .iter()
        .map(|p| PhaseLine {
            action: p.action.clone(),
            duration: p
                .duration_ms
                .map_or_else(|| "unfinished".into(), |ms| duration(ms as f64)),
            cells: services
                .iter()
                .map(|name| match p.downtime_ms.get(name).copied().unwrap_or(0) {
                    0 => PhaseCell {
                        text: "0".into(),
                        class: "num zero",
                    },
                    ms => PhaseCell {
                        text: duration(ms as f64),
                        class: "num down",
                    },
                })
                .collect(),
        })
        .collect();
    Some(PhaseTable { services, rows })
}

pub(super) fn window_rows(summary: &Summary) -> Vec<WindowRow> {
    let mut rows: Vec<(DateTime<Utc>, WindowRow)> = Vec::new();
    for s in summary.services.values() {
        for w in &s.windows {
            let row = WindowRow {
                service: s.name.clone(),
                start: clock(w.start),
                end: clock(w.end),
                duration: duration(w.duration_ms as f64),
                action: w.action.clone().unwrap_or_else(|| "—".into()),
                class: match w.prober_late {
                    true => format!("{} (prober late: not counted)", w.class_text()),
                    false => w.class_text(),
                },
                failures: w.failures,
                first_error: w.first_error.clone().unwrap_or_default(),
            };
            rows.push((w.start, row));
        }
    }
    rows.sort_by_key(|(start, _)| *start);
    rows.into_iter().map(|(_, row)| row).collect()
}

#[derive(Serialize)]
pub(super) struct SmokeView {
    pub(super) phases: Vec<PhaseRow>,
    pub(super) regressions: Vec<TestRow>,
    /// Tests failing after the upgrade that are not regressions (they failed before too).
    pub(super) other_failures: Vec<TestRow>,
}

#[derive(Serialize)]
pub(super) struct PhaseRow {
    pub(super) phase: &'static str,
    pub(super) counts: Counts,
}

#[derive(Serialize)]
pub(super) struct TestRow {
    pub(super) id: String,
    pub(super) status: String,
    pub(super) details: Option<String>,
}

pub(super) fn smoke_view(summary: &Summary, after: Option<&Smoke>) -> SmokeView {
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
pub(super) struct PersistentRow {
    pub(super) name: String,
    pub(super) outcome: String,
    pub(super) outcome_class: &'static str,
    pub(super) checksum: String,
    pub(super) detail: String,
}

pub(super) fn persistent_row(p: &Persistent) -> PersistentRow {
    PersistentRow {
        name: p.name.clone(),
        outcome: p.outcome.as_str().into(),
        outcome_class: match p.outcome {
            PersistentOutcome::Intact | PersistentOutcome::Created => "ok",
            PersistentOutcome::Lost => "bad",
            PersistentOutcome::Changed => "warn",
        },
        checksum: p.checksum.clone().unwrap_or_else(|| "—".into()),
        detail: p.detail.clone().unwrap_or_default(),
    }
}

#[derive(Serialize)]
pub(super) struct StepRow {
    pub(super) step: String,
    pub(super) outcome: String,
    pub(super) outcome_class: &'static str,
    pub(super) exit_code: String,
    pub(super) duration: String,
    pub(super) attempts: usize,
    pub(super) error: Option<String>,
}

pub(super) fn step_row(s: &summary::StepSummary) -> StepRow {
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
pub(super) fn duration(ms: f64) -> String {
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
pub(super) fn clock(t: DateTime<Utc>) -> String {
    t.format("%H:%M:%S%.3f").to_string()
}
