//! Rally's task report (`rally task report --json`, the exporter's format 1.x): per
//! workload the scenario, iteration counts, the SLA verdict and the duration statistics
//! (Rally gives seconds; these are ms). Statistics Rally could not compute ("n/a", when no
//! iteration succeeded) are `None`, never 0.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, bail};
use serde_json::Value;

use crate::workspace::evidence::{DurationStats, RallyWorkload};

/// Reads a report file into its workloads, in the order Rally ran them.
pub fn read(path: &Path) -> anyhow::Result<Vec<RallyWorkload>> {
    let text =
        std::fs::read(path).with_context(|| format!("failed to read `{}`", path.display()))?;
    parse(&text).with_context(|| format!("`{}` is not a Rally JSON report", path.display()))
}

/// Parses a report's bytes.
pub fn parse(bytes: &[u8]) -> anyhow::Result<Vec<RallyWorkload>> {
    let report: Value = serde_json::from_slice(bytes).context("not JSON")?;
    let tasks = report
        .get("tasks")
        .and_then(Value::as_array)
        .context("no `tasks` list (is it `rally task report --json` output?)")?;
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut workloads = Vec::new();
    for (t, task) in tasks.iter().enumerate() {
        for (s, subtask) in list(task, "subtasks").iter().enumerate() {
            for (w, workload) in list(subtask, "workloads").iter().enumerate() {
                let at = format!("tasks[{t}].subtasks[{s}].workloads[{w}]");
                let mut parsed = self::workload(workload).with_context(|| at.clone())?;
                let n = seen.entry(parsed.name.clone()).or_default();
                *n += 1;
                if *n > 1 {
                    parsed.name = format!("{} #{n}", parsed.name);
                }
                workloads.push(parsed);
            }
        }
    }
    if workloads.is_empty() {
        bail!("the report holds no workload");
    }
    Ok(workloads)
}

fn list<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn workload(w: &Value) -> anyhow::Result<RallyWorkload> {
    let name = w
        .get("scenario")
        .and_then(Value::as_object)
        .and_then(|m| m.keys().next())
        .context("no `scenario`")?
        .clone();
    let count = |key: &str| {
        w.get(key)
            .and_then(Value::as_u64)
            .with_context(|| format!("no `{key}`"))
    };
    let sla_failures = w
        .pointer("/sla_results/sla")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice)
        .iter()
        .filter(|c| c.get("success").and_then(Value::as_bool) == Some(false))
        .map(|c| {
            let detail = c.get("detail").and_then(Value::as_str).unwrap_or("");
            let criterion = c.get("criterion").and_then(Value::as_str).unwrap_or("sla");
            format!("{criterion}: {detail}")
        })
        .collect();
    let durations = w.pointer("/statistics/durations");
    let mut atomics = Vec::new();
    for atomic in durations.map_or(&[][..], |d| list(d, "atomics")) {
        flatten_atomic(atomic, "", &mut atomics);
    }
    Ok(RallyWorkload {
        name,
        iterations: count("total_iteration_count")?,
        failed: count("failed_iteration_count")?,
        pass_sla: w.get("pass_sla").and_then(Value::as_bool).unwrap_or(false),
        sla_failures,
        total: durations
            .and_then(|d| d.pointer("/total/data"))
            .map(stats)
            .unwrap_or_default(),
        atomics,
    })
}

/// Nested atomic actions (an action timed inside another) become `outer > inner`.
fn flatten_atomic(a: &Value, prefix: &str, out: &mut Vec<(String, DurationStats)>) {
    let Some(name) = a
        .get("display_name")
        .or_else(|| a.get("name"))
        .and_then(Value::as_str)
    else {
        return;
    };
    let name = format!("{prefix}{name}");
    out.push((name.clone(), a.get("data").map(stats).unwrap_or_default()));
    for child in list(a, "children") {
        flatten_atomic(child, &format!("{name} > "), out);
    }
}

fn stats(data: &Value) -> DurationStats {
    let ms = |key: &str| data.get(key).and_then(Value::as_f64).map(|s| s * 1000.0);
    DurationStats {
        min: ms("min"),
        median: ms("median"),
        p90: ms("90%ile"),
        p95: ms("95%ile"),
        max: ms("max"),
        avg: ms("avg"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn report(workloads: Vec<Value>) -> Vec<u8> {
        json!({"info": {"format_version": "1.2"}, "tasks": [{"subtasks": [{"workloads": workloads}]}]})
            .to_string()
            .into_bytes()
    }

    fn workload(name: &str, failed: u64, median: Value) -> Value {
        json!({
            "scenario": {name: {}},
            "total_iteration_count": 10,
            "failed_iteration_count": failed,
            "pass_sla": failed == 0,
            "sla_results": {"sla": [{"criterion": "failure_rate", "success": failed == 0,
                                     "detail": "Failure rate criteria 0.00% <= 10.00% <= 0.00% - Failed"}]},
            "statistics": {"durations": {
                "total": {"data": {"min": 0.1, "median": median, "90%ile": 0.3, "95%ile": 0.35,
                                   "max": 0.4, "avg": 0.2, "success": "90.0%", "iteration_count": 10}},
                "atomics": [{"name": "keystone_v3.create_user", "display_name": "keystone_v3.create_user",
                             "data": {"median": 0.05},
                             "children": [{"name": "inner", "data": {"median": 0.01}}]}]
            }}
        })
    }

    #[test]
    fn seconds_become_ms_and_nested_atomics_are_flattened() {
        let w = &parse(&report(vec![workload("K.auth", 0, json!(0.25))])).unwrap()[0];
        assert_eq!(w.name, "K.auth");
        assert_eq!((w.iterations, w.failed, w.pass_sla), (10, 0, true));
        assert_eq!(w.total.median, Some(250.0));
        assert_eq!(w.total.p90, Some(300.0));
        assert!(w.sla_failures.is_empty());
        let names: Vec<&str> = w.atomics.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["keystone_v3.create_user", "keystone_v3.create_user > inner"]
        );
        assert_eq!(w.atomics[1].1.median, Some(10.0));
    }

    #[test]
    fn not_available_statistics_are_none_and_failed_criteria_are_kept() {
        let w = &parse(&report(vec![workload("K.auth", 10, json!("n/a"))])).unwrap()[0];
        assert_eq!(w.total.median, None);
        assert!(!w.pass_sla);
        assert_eq!(w.sla_failures.len(), 1);
        assert!(w.sla_failures[0].starts_with("failure_rate: "));
    }

    fn fixture(name: &str) -> Vec<RallyWorkload> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/rally")
            .join(name);
        read(&path).unwrap()
    }

    /// Reports of real rally 5.1.1 / rally-openstack 4.1.0 runs (tests/data/rally/README.md).
    #[test]
    fn real_reports_are_read_with_their_figures() {
        let before = fixture("report-before.json");
        let names: Vec<&str> = before.iter().map(|w| w.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "KeystoneBasic.create_and_list_users",
                "KeystoneBasic.authenticate_user_and_validate_token",
                "Authenticate.keystone"
            ]
        );
        for w in &before {
            assert!(w.iterations > 0 && w.failed == 0 && w.pass_sla, "{w:?}");
            let (min, median, max) = (
                w.total.min.unwrap(),
                w.total.median.unwrap(),
                w.total.max.unwrap(),
            );
            assert!(0.0 < min && min <= median && median <= max, "{w:?}");
            assert!(!w.atomics.is_empty(), "{w:?}");
        }
        let failed = fixture("report-failed.json");
        assert!(
            failed
                .iter()
                .any(|w| w.failed > 0 && !w.pass_sla && !w.sla_failures.is_empty()),
            "{failed:?}"
        );
    }

    #[test]
    fn a_scenario_run_twice_is_numbered() {
        let text = report(vec![
            workload("K.a", 0, json!(1)),
            workload("K.a", 0, json!(1)),
        ]);
        let names: Vec<String> = parse(&text).unwrap().into_iter().map(|w| w.name).collect();
        assert_eq!(names, ["K.a", "K.a #2"]);
    }

    #[test]
    fn other_json_is_refused_with_the_reason() {
        let err = parse(b"{\"results\": []}").unwrap_err();
        assert!(format!("{err:#}").contains("no `tasks`"), "{err:#}");
        let err = parse(&report(vec![])).unwrap_err();
        assert!(format!("{err:#}").contains("no workload"), "{err:#}");
        let err = parse(&report(vec![json!({"scenario": {"K.a": {}}})])).unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.contains("workloads[0]") && text.contains("total_iteration_count"),
            "{text}"
        );
        assert!(parse(b"not json").is_err());
    }
}
