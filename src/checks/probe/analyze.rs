//! From probe results to availability: outage windows, downtime, percentiles, budgets.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::spec::{BASELINE, Spec};
use crate::workspace::evidence::{Percentiles, ProbeRecord, ServiceReport, Window};

/// A timeout sent this late, or noticed this late (its timer fired past the timeout), is
/// the prober's or the machine's, not the service's.
const LATE_MS: f64 = 100.0;

/// One report per spec, from the results of all of them.
pub fn analyze(specs: &[Spec], records: &[ProbeRecord]) -> Vec<ServiceReport> {
    let timeouts = Timeouts::of(specs, records);
    specs
        .iter()
        .map(|spec| {
            let mine: Vec<&ProbeRecord> = records
                .iter()
                .filter(|r| r.service == spec.service)
                .collect();
            service(spec, &mine, &timeouts)
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
                "`{}` was down {} ms (budget {} ms) in {} window(s){}",
                s.name,
                s.downtime_ms,
                s.budget_ms.unwrap_or(0),
                s.own_windows(),
                first_failure(s)
            )
        })
        .collect()
}

/// The first own window's first failure, for the one line a CI log's tail keeps.
fn first_failure(s: &ServiceReport) -> String {
    let Some(w) = s.windows.iter().find(|w| !w.prober_late) else {
        return String::new();
    };
    format!(
        "; the first at {} during {}: {}",
        w.start.format("%H:%M:%S%.3f"),
        w.action.as_deref().unwrap_or("no upgrade action"),
        w.first_error.as_deref().unwrap_or(&w.class)
    )
}

/// When a probe was in flight: its start and its end.
type Span = (DateTime<Utc>, DateTime<Utc>);

/// Every service's timeouts as time spans, to tell a stall that hit every service at once
/// (the prober's or the machine's) from one service timing out.
struct Timeouts<'a> {
    spans: BTreeMap<&'a str, Vec<Span>>,
    services: usize,
    longest: chrono::Duration,
}

impl<'a> Timeouts<'a> {
    fn of(specs: &[Spec], records: &'a [ProbeRecord]) -> Timeouts<'a> {
        let mut spans: BTreeMap<&str, Vec<_>> = BTreeMap::new();
        let mut longest = chrono::Duration::zero();
        for r in records.iter().filter(|r| r.outcome == "timeout") {
            let span = (r.t, end_of(r));
            longest = longest.max(span.1 - span.0);
            spans.entry(r.service.as_str()).or_default().push(span);
        }
        for list in spans.values_mut() {
            list.sort();
        }
        Timeouts {
            spans,
            services: specs.len(),
            longest,
        }
    }

    /// Whether every other service also timed out in a span overlapping this probe's.
    fn everywhere_at_once(&self, r: &ProbeRecord) -> bool {
        if self.services < 2 || self.spans.len() < self.services {
            return false;
        }
        let (start, end) = (r.t, end_of(r));
        self.spans
            .iter()
            .filter(|(s, _)| **s != r.service)
            .all(|(_, list)| {
                let from = list.partition_point(|(b, _)| *b < start - self.longest);
                let to = list.partition_point(|(b, _)| *b <= end);
                list[from..to].iter().any(|(b, e)| *b <= end && *e >= start)
            })
    }

    /// A failure the prober or the machine caused rather than the service.
    fn prober_made(&self, r: &ProbeRecord, timeout_ms: f64) -> bool {
        r.outcome == "timeout"
            && (r.late_ms > LATE_MS
                || r.latency_ms > timeout_ms + LATE_MS
                || self.everywhere_at_once(r))
    }
}

fn end_of(r: &ProbeRecord) -> DateTime<Utc> {
    r.t + chrono::Duration::microseconds((r.latency_ms * 1000.0) as i64)
}

fn service(spec: &Spec, records: &[&ProbeRecord], timeouts: &Timeouts) -> ServiceReport {
    let (baseline, during): (Vec<&ProbeRecord>, Vec<&ProbeRecord>) = records
        .iter()
        .partition(|r| r.action.as_deref() == Some(BASELINE));
    let timeout_ms = spec.timeout.as_secs_f64() * 1000.0;
    let windows = windows(&during, |r| timeouts.prober_made(r, timeout_ms));
    let counted = |late: bool| -> u64 {
        let mine = windows.iter().filter(|w| w.prober_late == late);
        mine.map(|w| w.duration_ms).sum()
    };
    let downtime_ms = counted(false);
    let budget_ms = spec.budget.map(|b| b.as_millis() as u64);
    let ok = during.iter().filter(|r| r.outcome == "ok").count() as u64;
    let mut failures = BTreeMap::new();
    let mut failures_by_connection = BTreeMap::new();
    for r in during.iter().filter(|r| r.outcome != "ok") {
        *failures.entry(r.outcome.clone()).or_insert(0) += 1;
        if let Some(c) = &r.connection {
            *failures_by_connection.entry(c.clone()).or_insert(0) += 1;
        }
    }
    ServiceReport {
        name: spec.service.clone(),
        url: spec.url.clone(),
        connection: Some(spec.connection_label().to_string()),
        probes: during.len() as u64,
        failures,
        failures_by_connection,
        availability: if during.is_empty() {
            100.0
        } else {
            ok as f64 * 100.0 / during.len() as f64
        },
        downtime_ms,
        prober_late_ms: counted(true),
        max_late_ms: records.iter().map(|r| r.late_ms).fold(0.0, f64::max),
        windows,
        latency_ms: percentiles(&during),
        baseline_ms: percentiles(&baseline),
        budget_ms,
        within_budget: budget_ms.is_none_or(|b| downtime_ms <= b),
    }
}

/// Runs of failed probes: each from its first failure to the next success (or, when the
/// run ends failing, to the end of the last failed probe). A run every failure of which
/// `prober_made` is marked `prober_late`.
fn windows(records: &[&ProbeRecord], prober_made: impl Fn(&ProbeRecord) -> bool) -> Vec<Window> {
    let mut windows = Vec::new();
    let mut open: Option<Vec<&ProbeRecord>> = None;
    for r in records {
        match (&mut open, r.outcome == "ok") {
            (Some(failed), true) => {
                windows.push(window(failed, r.t, &prober_made));
                open = None;
            }
            (Some(failed), false) => failed.push(r),
            (None, false) => open = Some(vec![r]),
            (None, true) => {}
        }
    }
    if let Some(failed) = open {
        let end = end_of(failed[failed.len() - 1]);
        windows.push(window(&failed, end, &prober_made));
    }
    windows
}

fn window(
    failed: &[&ProbeRecord],
    end: DateTime<Utc>,
    prober_made: &impl Fn(&ProbeRecord) -> bool,
) -> Window {
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
        prober_late: failed.iter().all(|r| prober_made(r)),
        first_error: failed[0].error.clone(),
        connection: failed[0].connection.clone(),
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
            late_ms: 0.0,
            connection: None,
        }
    }

    fn on(service: &str, ms: i64, outcome: &str, latency_ms: f64, late_ms: f64) -> ProbeRecord {
        ProbeRecord {
            service: service.into(),
            latency_ms,
            late_ms,
            ..rec(ms, outcome, "up")
        }
    }

    fn spec(budget_ms: u64) -> Spec {
        named("api", budget_ms)
    }

    fn named(service: &str, budget_ms: u64) -> Spec {
        Spec {
            service: service.into(),
            url: "http://x/".into(),
            requests: vec![],
            interval: Duration::from_millis(50),
            timeout: Duration::from_secs(1),
            budget: Some(Duration::from_millis(budget_ms)),
            auth: None,
            connection: None,
            command: None,
        }
    }

    #[test]
    fn windows_run_from_first_failure_to_next_success_and_carry_the_action() {
        let mut first = rec(100, "refused", "node1");
        first.error = Some("connect: refused".into());
        let records = [
            rec(0, "ok", BASELINE),
            rec(50, "ok", "node1"),
            first,
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
        let said = report.windows[0].first_error.as_deref();
        assert_eq!(said, Some("connect: refused"), "the first failure's words");
        assert_eq!(report.windows[1].first_error, None);
        assert_eq!(
            report.windows[1].duration_ms, 2,
            "open window ends with its last probe"
        );
        assert_eq!(report.downtime_ms, 102);
        assert!(!report.within_budget);
        assert_eq!(report.failures["refused"], 2);
        assert!((report.availability - 40.0).abs() < 1e-9);
        assert!(report.baseline_ms.is_some());
        assert_eq!(windows(&refs[..2], |_| false).len(), 0);
        let over = over_budget(std::slice::from_ref(report));
        assert_eq!(over.len(), 1);
        assert!(
            over[0].ends_with("during node1: connect: refused"),
            "names the first failure: {over:?}"
        );
    }

    #[test]
    fn no_failure_means_no_downtime_and_within_budget() {
        let records = [rec(0, "ok", "a"), rec(50, "ok", "a")];
        let report = &analyze(&[spec(0)], &records)[0];
        assert_eq!(report.downtime_ms, 0);
        assert!(report.within_budget);
        assert_eq!(report.latency_ms.unwrap().p99, 2.0);
    }

    #[test]
    fn timeouts_of_a_late_prober_are_not_the_services_downtime() {
        let specs = [named("api", 0)];
        // Sent 300 ms late, or its 1 s timer noticed at 1.4 s: the prober's stall.
        let late_send = [
            on("api", 0, "ok", 2.0, 0.0),
            on("api", 50, "timeout", 1000.0, 300.0),
            on("api", 1100, "ok", 2.0, 0.0),
        ];
        let late_timer = [
            on("api", 0, "ok", 2.0, 0.0),
            on("api", 50, "timeout", 1400.0, 0.0),
            on("api", 1500, "ok", 2.0, 0.0),
        ];
        for records in [&late_send[..], &late_timer[..]] {
            let report = &analyze(&specs, records)[0];
            assert!(report.windows[0].prober_late, "{report:?}");
            assert_eq!(report.downtime_ms, 0);
            assert!(report.prober_late_ms > 1000);
            assert!(report.within_budget);
        }
        assert_eq!(analyze(&specs, &late_send)[0].max_late_ms, 300.0);
    }

    #[test]
    fn a_timeout_kept_on_time_or_a_refusal_is_the_services_even_while_late() {
        let specs = [named("api", 0)];
        let kept = [
            on("api", 0, "timeout", 1000.0, 0.0),
            on("api", 1000, "ok", 2.0, 0.0),
        ];
        let refused = [
            on("api", 0, "refused", 1.0, 500.0),
            on("api", 600, "ok", 2.0, 0.0),
        ];
        // Late probes and one on time in one window: the on-time failure makes it real.
        let mixed = [
            on("api", 0, "timeout", 1000.0, 400.0),
            on("api", 50, "timeout", 1000.0, 0.0),
            on("api", 1100, "ok", 2.0, 0.0),
        ];
        for records in [&kept[..], &refused[..], &mixed[..]] {
            let report = &analyze(&specs, records)[0];
            assert!(!report.windows[0].prober_late, "{report:?}");
            assert!(report.downtime_ms > 0);
            assert!(!report.within_budget);
        }
    }

    #[test]
    fn timeouts_of_every_service_at_once_are_a_stall_but_one_services_are_not() {
        let specs = [
            named("api", 0),
            named("node@node1", 0),
            named("node@node2", 0),
        ];
        let at_once = [
            on("api", 0, "timeout", 1000.0, 0.0),
            on("node@node1", 30, "timeout", 1000.0, 0.0),
            on("node@node2", 60, "timeout", 1000.0, 0.0),
            on("api", 1100, "ok", 2.0, 0.0),
            on("node@node1", 1100, "ok", 2.0, 0.0),
            on("node@node2", 1100, "ok", 2.0, 0.0),
        ];
        let reports = analyze(&specs, &at_once);
        assert!(
            reports
                .iter()
                .all(|r| r.windows[0].prober_late && r.downtime_ms == 0),
            "{reports:?}"
        );
        // node2 answered meanwhile: api and node1 really timed out.
        let mut two = at_once.to_vec();
        two[2] = on("node@node2", 60, "ok", 2.0, 0.0);
        let reports = analyze(&specs, &two);
        assert!(!reports[0].windows[0].prober_late);
        assert!(reports[0].downtime_ms > 0);
    }
}
