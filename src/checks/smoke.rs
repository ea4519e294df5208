//! The smoke suite's results of a phase: read natively (subunit v2 or JUnit), counted,
//! compared with the phase before, kept as evidence, judged against `max_failures`.
//! Running the test command is the verify step's (`crate::steps`).

use std::path::{Path, PathBuf};

use crate::config::SmokeConfig;
use crate::exit::{Kind, fail};
use crate::flow::Phase;
use crate::results;
use crate::workspace::evidence::{self, Smoke};

/// Where the command's results are: its captured stdout in the evidence folder, or the
/// file the lab names (relative to the lab file).
pub fn results_file(
    workspace: &Path,
    base_dir: &Path,
    config: &SmokeConfig,
    phase: Phase,
) -> PathBuf {
    if config.results == "stdout" {
        let dir = evidence::dir(workspace);
        let _ = std::fs::create_dir_all(&dir);
        dir.join(format!("smoke-{}.subunit", phase.as_str()))
    } else {
        base_dir.join(&config.results)
    }
}

/// Reads the results of a phase the command left in `file`; returns the check failures
/// found (the evidence is written either way).
pub fn judge(
    workspace: &Path,
    config: &SmokeConfig,
    phase: Phase,
    file: &Path,
) -> anyhow::Result<Vec<String>> {
    let tests = results::read(file).map_err(|e| {
        fail(
            Kind::Infra,
            format!(
                "the smoke command left no readable results in `{}`: {e:#}",
                file.display()
            ),
        )
    })?;
    let mut smoke = Smoke {
        phase: phase.as_str().into(),
        counts: results::counts(&tests),
        tests,
        max_failures: Some(config.max_failures),
        regressions: Vec::new(),
    };
    let before = match phase {
        Phase::After => evidence::read::<Smoke>(workspace, "smoke-before.json")?,
        Phase::Before => None,
    };
    if let Some(before) = before {
        smoke.regressions = results::regressions(&before.tests, &smoke.tests);
    }
    evidence::write(workspace, &format!("smoke-{}.json", phase.as_str()), &smoke)?;
    print_counts(&smoke);
    Ok(problems(&smoke, config))
}

fn problems(smoke: &Smoke, config: &SmokeConfig) -> Vec<String> {
    let mut problems = Vec::new();
    if smoke.counts.failed > config.max_failures {
        problems.push(format!(
            "{} smoke test(s) failed (max_failures {})",
            smoke.counts.failed, config.max_failures
        ));
    }
    if !smoke.regressions.is_empty() {
        problems.push(format!(
            "{} test(s) passed before the upgrade and fail after it: {}",
            smoke.regressions.len(),
            smoke.regressions.join(", ")
        ));
    }
    problems
}

fn print_counts(smoke: &Smoke) {
    let c = &smoke.counts;
    crate::say!(
        "--- smoke {}: {} tests, {} passed, {} failed, {} skipped, {} regressions",
        smoke.phase,
        c.tests,
        c.passed,
        c.failed,
        c.skipped,
        smoke.regressions.len()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    const JUNIT: &str = r#"<testsuite name="s"><testcase classname="a.B" name="test_x"/><testcase classname="a.B" name="test_y"><failure message="boom">tb</failure></testcase></testsuite>"#;

    fn config(max_failures: u64) -> SmokeConfig {
        SmokeConfig {
            command: vec!["true".into()],
            results: "out.xml".into(),
            max_failures,
            timeout: None,
        }
    }

    #[test]
    fn failures_over_the_budget_and_regressions_are_the_checks_problems() {
        let ws = tempfile::tempdir().unwrap();
        let before = ws.path().join("before.xml");
        std::fs::write(
            &before,
            JUNIT.replace("<failure message=\"boom\">tb</failure>", ""),
        )
        .unwrap();
        let problems = judge(ws.path(), &config(0), Phase::Before, &before).unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        let after = ws.path().join("after.xml");
        std::fs::write(&after, JUNIT).unwrap();
        let problems = judge(ws.path(), &config(1), Phase::After, &after).unwrap();
        assert_eq!(
            problems.len(),
            1,
            "within budget, but a regression: {problems:?}"
        );
        assert!(problems[0].contains("a.B.test_y"), "{problems:?}");
        let saved: Smoke = evidence::read(ws.path(), "smoke-after.json")
            .unwrap()
            .unwrap();
        assert_eq!((saved.counts.tests, saved.counts.failed), (2, 1));
        let problems = judge(ws.path(), &config(0), Phase::Before, &after).unwrap();
        assert!(
            problems[0].contains("1 smoke test(s) failed (max_failures 0)"),
            "{problems:?}"
        );
    }

    #[test]
    fn a_command_that_left_no_results_is_an_infrastructure_error() {
        let ws = tempfile::tempdir().unwrap();
        let err = judge(
            ws.path(),
            &config(0),
            Phase::Before,
            &ws.path().join("none"),
        )
        .unwrap_err();
        assert_eq!(crate::exit::kind_of(&err), Kind::Infra);
    }
}
