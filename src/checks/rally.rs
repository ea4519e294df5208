//! The Rally run of a phase: its report read, kept as evidence, and judged. Failed
//! iterations or a failed SLA are check failures in either phase; after the upgrade, a
//! workload slower than `max_slowdown` times its before-figure (and slower by more than the
//! noise floor) is one too. Running the command is the verify step's (`crate::steps`).

use std::path::{Path, PathBuf};

use crate::config::{RallyConfig, RallyMetric};
use crate::exit::{Kind, fail};
use crate::flow::Phase;
use crate::results::rally;
use crate::workspace::evidence::{self, DurationStats, Rally, RallyComparison, RallyWorkload};

/// Where the command must write its report (`$ROLLCI_RALLY_REPORT`).
pub fn report_file(workspace: &Path, phase: Phase) -> PathBuf {
    let dir = evidence::dir(workspace);
    let _ = std::fs::create_dir_all(&dir);
    dir.join(format!("rally-{}.report.json", phase.as_str()))
}

/// Reads the phase's report, writes `evidence/rally-<phase>.json`, returns the problems.
pub fn judge(
    workspace: &Path,
    config: &RallyConfig,
    phase: Phase,
    file: &Path,
) -> anyhow::Result<Vec<String>> {
    let workloads = rally::read(file).map_err(|e| {
        fail(
            Kind::Infra,
            format!("the Rally command left no readable report: {e:#}"),
        )
    })?;
    let mut run = Rally {
        phase: phase.as_str().into(),
        workloads,
        max_slowdown: config.max_slowdown,
        comparisons: Vec::new(),
    };
    if phase == Phase::After
        && let Some(before) = evidence::read::<Rally>(workspace, "rally-before.json")?
    {
        run.comparisons = compare(&before.workloads, &run.workloads, config);
    }
    evidence::write(workspace, &format!("rally-{}.json", phase.as_str()), &run)?;
    print_run(&run, config.metric);
    Ok(problems(&run))
}

/// Each workload of `before` against the same-named one after (a workload gone after the
/// upgrade is compared with nothing: `after_ms` is `None`, and it is a problem).
pub fn compare(
    before: &[RallyWorkload],
    after: &[RallyWorkload],
    config: &RallyConfig,
) -> Vec<RallyComparison> {
    let floor_ms = config.noise_floor.as_secs_f64() * 1000.0;
    before
        .iter()
        .map(|b| {
            let a = after.iter().find(|a| a.name == b.name);
            let before_ms = pick(&b.total, config.metric);
            let after_ms = a.and_then(|a| pick(&a.total, config.metric));
            let ratio = match (before_ms, after_ms) {
                (Some(b), Some(a)) if b > 0.0 => Some(a / b),
                _ => None,
            };
            let slow = match (before_ms, after_ms, ratio) {
                (Some(b), Some(a), Some(r)) => r > config.max_slowdown && a - b > floor_ms,
                _ => false,
            };
            RallyComparison {
                workload: b.name.clone(),
                metric: config.metric.as_str().into(),
                before_ms,
                after_ms,
                ratio,
                slow,
            }
        })
        .collect()
}

fn pick(stats: &DurationStats, metric: RallyMetric) -> Option<f64> {
    stats.get(metric.as_str())
}

fn problems(run: &Rally) -> Vec<String> {
    let mut problems = Vec::new();
    for w in &run.workloads {
        if w.failed > 0 || !w.pass_sla {
            let slas = match w.sla_failures.is_empty() {
                true => String::new(),
                false => format!(" ({})", w.sla_failures.join("; ")),
            };
            problems.push(format!(
                "Rally {}: {} of {} iterations failed{slas}",
                w.name, w.failed, w.iterations
            ));
        }
    }
    for c in &run.comparisons {
        match (c.before_ms, c.after_ms, c.ratio) {
            (_, None, _) if !run.workloads.iter().any(|w| w.name == c.workload) => problems
                .push(format!(
                    "Rally {}: ran before the upgrade, missing after it",
                    c.workload
                )),
            (Some(b), Some(a), Some(r)) if c.slow => problems.push(format!(
                "Rally {}: {} went from {b:.0} ms to {a:.0} ms after the upgrade (x{r:.2}, max_slowdown {})",
                c.workload, c.metric, run.max_slowdown
            )),
            _ => {}
        }
    }
    problems
}

fn print_run(run: &Rally, metric: RallyMetric) {
    for w in &run.workloads {
        let figure = pick(&w.total, metric).map_or("n/a".into(), |ms| format!("{ms:.0} ms"));
        let vs = run
            .comparisons
            .iter()
            .find(|c| c.workload == w.name)
            .and_then(|c| Some((c.before_ms?, c.ratio?)))
            .map_or(String::new(), |(b, r)| {
                format!(" (before {b:.0} ms, x{r:.2})")
            });
        crate::say!(
            "--- rally {}: {} {}/{} iterations ok, {} {figure}{vs}",
            run.phase,
            w.name,
            w.iterations - w.failed.min(w.iterations),
            w.iterations,
            metric.as_str()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn config(max_slowdown: f64) -> RallyConfig {
        RallyConfig {
            command: vec!["true".into()],
            max_slowdown,
            metric: RallyMetric::Median,
            noise_floor: Duration::from_millis(20),
            timeout: None,
        }
    }

    fn workload(name: &str, median: Option<f64>, failed: u64) -> RallyWorkload {
        RallyWorkload {
            name: name.into(),
            iterations: 10,
            failed,
            pass_sla: failed == 0,
            total: DurationStats {
                median,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn run_after(before: &[RallyWorkload], after: Vec<RallyWorkload>, max: f64) -> Rally {
        Rally {
            phase: "after".into(),
            comparisons: compare(before, &after, &config(max)),
            workloads: after,
            max_slowdown: max,
        }
    }

    #[test]
    fn a_slowdown_past_the_ratio_and_the_noise_floor_is_a_problem() {
        let before = [
            workload("auth", Some(100.0), 0),
            workload("list", Some(5.0), 0),
        ];
        // auth x3 (200 ms slower): slow; list x3 but only 10 ms slower: noise.
        let run = run_after(
            &before,
            vec![
                workload("auth", Some(300.0), 0),
                workload("list", Some(15.0), 0),
            ],
            1.5,
        );
        assert!(run.comparisons[0].slow);
        assert!(!run.comparisons[1].slow, "under the noise floor");
        let problems = problems(&run);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("auth") && problems[0].contains("x3.00"),
            "{}",
            problems[0]
        );
        let within = run_after(
            &before,
            vec![
                workload("auth", Some(140.0), 0),
                workload("list", Some(5.0), 0),
            ],
            1.5,
        );
        assert!(problems_of(&within).is_empty());
    }

    fn problems_of(run: &Rally) -> Vec<String> {
        problems(run)
    }

    #[test]
    fn failed_iterations_and_a_missing_workload_are_problems() {
        let before = [
            workload("auth", Some(100.0), 0),
            workload("gone", Some(1.0), 0),
        ];
        let run = run_after(&before, vec![workload("auth", None, 10)], 1.5);
        let problems = problems(&run);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("10 of 10 iterations failed"));
        assert!(problems[1].contains("gone") && problems[1].contains("missing after"));
        assert!(
            !run.comparisons[0].slow,
            "no figure after is no slowdown claim"
        );
    }

    #[test]
    fn a_command_that_left_no_report_is_an_infrastructure_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = report_file(dir.path(), Phase::Before);
        let err = judge(dir.path(), &config(2.0), Phase::Before, &file).unwrap_err();
        assert_eq!(crate::exit::kind_of(&err), Kind::Infra);
        assert!(format!("{err:#}").contains("no readable report"), "{err:#}");
    }
}
