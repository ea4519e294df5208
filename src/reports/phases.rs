//! Downtime per upgrade phase: how much of each service's outage fell inside each upgrade
//! action (keystone-expand, keystone-node1, …). A window is split by overlap, not charged
//! whole to the action it began in, so a window that outlives its action shows in the next
//! phase too, and windows outside every action are reported as such.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::workspace::evidence::{ActionSpan, ServiceReport};

/// One upgrade action and the downtime each probed service had while it ran.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PhaseSummary {
    pub action: String,
    pub start: DateTime<Utc>,
    pub end: Option<DateTime<Utc>>,
    pub duration_ms: Option<u64>,
    /// Downtime of every probed service inside the action, in ms (0 included, so a
    /// reader can tell "probed and up" from "not probed").
    pub downtime_ms: BTreeMap<String, u64>,
}

/// The phases in the order they ran. Windows of a late prober are not the services'
/// downtime and are left out, as in each service's own total. An action that never ended
/// (the run was killed) lasts until the last window's end.
pub fn summarize(
    actions: &[ActionSpan],
    services: &BTreeMap<String, ServiceReport>,
) -> Vec<PhaseSummary> {
    let last_end = services
        .values()
        .flat_map(|s| s.windows.iter().map(|w| w.end))
        .max();
    actions
        .iter()
        .map(|a| {
            let until = a.end.or(last_end).unwrap_or(a.start);
            let downtime_ms = services
                .iter()
                .map(|(name, s)| {
                    let ms = s
                        .windows
                        .iter()
                        .filter(|w| !w.prober_late)
                        .map(|w| overlap_ms(w.start, w.end, a.start, until))
                        .sum();
                    (name.clone(), ms)
                })
                .collect();
            PhaseSummary {
                action: a.name.clone(),
                start: a.start,
                end: a.end,
                duration_ms: a.end.map(|e| ms_between(a.start, e)),
                downtime_ms,
            }
        })
        .collect()
}

fn overlap_ms(a0: DateTime<Utc>, a1: DateTime<Utc>, b0: DateTime<Utc>, b1: DateTime<Utc>) -> u64 {
    ms_between(a0.max(b0), a1.min(b1))
}

fn ms_between(from: DateTime<Utc>, to: DateTime<Utc>) -> u64 {
    (to - from).num_milliseconds().max(0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workspace::evidence::Window;

    fn t(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_800_000_000_000 + ms).unwrap()
    }

    fn window(start: i64, end: i64, prober_late: bool) -> Window {
        Window {
            start: t(start),
            end: t(end),
            duration_ms: (end - start) as u64,
            action: None,
            failures: 1,
            class: "refused".into(),
            prober_late,
            first_error: None,
            connection: None,
        }
    }

    fn service(name: &str, windows: Vec<Window>) -> (String, ServiceReport) {
        let report = ServiceReport {
            name: name.into(),
            windows,
            ..Default::default()
        };
        (name.into(), report)
    }

    fn span(name: &str, start: i64, end: Option<i64>) -> ActionSpan {
        ActionSpan {
            name: name.into(),
            start: t(start),
            end: end.map(t),
        }
    }

    #[test]
    fn a_window_is_split_by_overlap_across_the_actions_it_spans() {
        let services = BTreeMap::from([
            service("vip", vec![]),
            service("node1", vec![window(900, 1300, false)]),
        ]);
        let actions = [
            span("expand", 0, Some(1000)),
            span("node1", 1000, Some(2000)),
        ];
        let phases = summarize(&actions, &services);
        assert_eq!(phases.len(), 2);
        assert_eq!(phases[0].downtime_ms["node1"], 100);
        assert_eq!(phases[1].downtime_ms["node1"], 300);
        assert_eq!(phases[0].downtime_ms["vip"], 0, "probed and up is a 0");
        assert_eq!(phases[1].duration_ms, Some(1000));
    }

    #[test]
    fn late_prober_windows_and_windows_outside_every_action_are_not_charged() {
        let services = BTreeMap::from([service(
            "vip",
            vec![window(100, 200, true), window(5000, 5100, false)],
        )]);
        let phases = summarize(&[span("node1", 0, Some(1000))], &services);
        assert_eq!(phases[0].downtime_ms["vip"], 0);
    }

    #[test]
    fn an_action_that_never_ended_runs_until_the_last_window() {
        let services = BTreeMap::from([service("vip", vec![window(500, 1500, false)])]);
        let phases = summarize(&[span("contract", 0, None)], &services);
        assert_eq!(phases[0].downtime_ms["vip"], 1000);
        assert_eq!(phases[0].duration_ms, None);
    }
}
