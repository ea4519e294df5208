//! From probe results to availability: outage windows, downtime, percentiles, budgets.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::spec::{BASELINE, Spec};
use crate::workspace::evidence::{Percentiles, ProbeRecord, ServiceReport, Window};

/// One report per spec, from the results of all of them.
pub fn analyze(specs: &[Spec], records: &[ProbeRecord]) -> Vec<ServiceReport> {
    specs
        .iter()
        .map(|spec| {
            let mine: Vec<&ProbeRecord> = records
                .iter()
                .filter(|r| r.service == spec.service)
                .collect();
            service(spec, &mine)
        })
        .collect()
}

/// Services whose downtime exceeded their budget, as messages.
pub fn over_budget(reports: &[ServiceReport]) -> Vec<String> {
    reports
        .iter()
        .filter(|s| !s.within_budget)
        .map(|s| {
            format!(
                "`{}` was down {} ms (budget {} ms) in {} window(s)",
                s.name,
                s.downtime_ms,
                s.budget_ms.unwrap_or(0),
                s.windows.len()
            )
        })
        .collect()
}

fn service(spec: &Spec, records: &[&ProbeRecord]) -> ServiceReport {
    let (baseline, during): (Vec<&ProbeRecord>, Vec<&ProbeRecord>) = records
        .iter()
        .partition(|r| r.action.as_deref() == Some(BASELINE));
    let windows = windows(&during);
    let downtime_ms: u64 = windows.iter().map(|w| w.duration_ms).sum();
    let budget_ms = spec.budget.map(|b| b.as_millis() as u64);
    let ok = during.iter().filter(|r| r.outcome == "ok").count() as u64;
    let mut failures = BTreeMap::new();
    for r in during.iter().filter(|r| r.outcome != "ok") {
        *failures.entry(r.outcome.clone()).or_insert(0) += 1;
    }
    ServiceReport {
        name: spec.service.clone(),
        url: spec.url.clone(),
        probes: during.len() as u64,
        failures,
        availability: if during.is_empty() {
            100.0
        } else {
            ok as f64 * 100.0 / during.len() as f64
        },
        downtime_ms,
        windows,
        latency_ms: percentiles(&during),
        baseline_ms: percentiles(&baseline),
        budget_ms,
        within_budget: budget_ms.is_none_or(|b| downtime_ms <= b),
    }
}

/// Runs of failed probes: each from its first failure to the next success (or, when the
/// run ends failing, to the end of the last failed probe).
fn windows(records: &[&ProbeRecord]) -> Vec<Window> {
    let mut windows = Vec::new();
    let mut open: Option<Vec<&ProbeRecord>> = None;
    for r in records {
        match (&mut open, r.outcome == "ok") {
            (Some(failed), true) => {
                windows.push(window(failed, r.t));
                open = None;
            }
            (Some(failed), false) => failed.push(r),
            (None, false) => open = Some(vec![r]),
            (None, true) => {}
        }
    }
    if let Some(failed) = open {
        let last = failed[failed.len() - 1];
        let end = last.t + chrono::Duration::microseconds((last.latency_ms * 1000.0) as i64);
        windows.push(window(&failed, end));
    }
    windows
}

fn window(failed: &[&ProbeRecord], end: DateTime<Utc>) -> Window {
    let start = failed[0].t;
    let mut classes: BTreeMap<&str, u64> = BTreeMap::new();
    for r in failed {
        *classes.entry(r.outcome.as_str()).or_insert(0) += 1;
    }
    let class = classes
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(c, _)| c.to_string())
        .unwrap_or_default();
    Window {
        start,
        end,
        duration_ms: (end - start).num_milliseconds().max(0) as u64,
        action: failed[0].action.clone(),
        failures: failed.len() as u64,
        class,
    }
}

/// p50/p95/p99 of the successful probes' latency (nearest rank).
fn percentiles(records: &[&ProbeRecord]) -> Option<Percentiles> {
    let mut ms: Vec<f64> = records
        .iter()
        .filter(|r| r.outcome == "ok")
        .map(|r| r.latency_ms)
        .collect();
    if ms.is_empty() {
        return None;
    }
    ms.sort_by(f64::total_cmp);
    let rank = |p: f64| ms[((p / 100.0 * ms.len() as f64).ceil() as usize).clamp(1, ms.len()) - 1];
    Some(Percentiles {
        p50: rank(50.0),
        p95: rank(95.0),
        p99: rank(99.0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn rec(ms: i64, outcome: &str, action: &str) -> ProbeRecord {
        ProbeRecord {
            service: "api".into(),
            t: DateTime::from_timestamp_millis(1_700_000_000_000 + ms).unwrap(),
            latency_ms: 2.0,
            outcome: outcome.into(),
            status: None,
            error: None,
            action: Some(action.into()),
        }
    }

    fn spec(budget_ms: u64) -> Spec {
        Spec {
            service: "api".into(),
            url: "http://x/".into(),
            requests: vec![],
            interval: Duration::from_millis(50),
            timeout: Duration::from_secs(1),
            budget: Some(Duration::from_millis(budget_ms)),
            auth: None,
        }
    }

    #[test]
    fn windows_run_from_first_failure_to_next_success_and_carry_the_action() {
        let records = [
            rec(0, "ok", BASELINE),
            rec(50, "ok", "node1"),
            rec(100, "refused", "node1"),
            rec(150, "refused", "node2"),
            rec(200, "ok", "node2"),
            rec(250, "timeout", "node3"),
        ];
        let refs: Vec<&ProbeRecord> = records.iter().collect();
        let report = &analyze(&[spec(100)], &records)[0];
        assert_eq!(report.probes, 5, "baseline probes are not counted");
        assert_eq!(report.windows.len(), 2);
        assert_eq!(report.windows[0].duration_ms, 100);
        assert_eq!(report.windows[0].action.as_deref(), Some("node1"));
        assert_eq!(report.windows[0].class, "refused");
        assert_eq!(
            report.windows[1].duration_ms, 2,
            "open window ends with its last probe"
        );
        assert_eq!(report.downtime_ms, 102);
        assert!(!report.within_budget);
        assert_eq!(report.failures["refused"], 2);
        assert!((report.availability - 40.0).abs() < 1e-9);
        assert!(report.baseline_ms.is_some());
        assert_eq!(windows(&refs[..2]).len(), 0);
        assert_eq!(over_budget(std::slice::from_ref(report)).len(), 1);
    }

    #[test]
    fn no_failure_means_no_downtime_and_within_budget() {
        let records = [rec(0, "ok", "a"), rec(50, "ok", "a")];
        let report = &analyze(&[spec(0)], &records)[0];
        assert_eq!(report.downtime_ms, 0);
        assert!(report.within_budget);
        assert_eq!(report.latency_ms.unwrap().p99, 2.0);
    }
}
