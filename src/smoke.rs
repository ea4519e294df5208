//! The smoke suite of `verify`: the lab's test command, its subunit v2 (or JUnit) results
//! read natively, counted, compared with the phase before, kept as evidence.

use std::path::{Path, PathBuf};

use crate::action::{self, Vars};
use crate::cli::Phase;
use crate::config::{Action, SmokeConfig};
use crate::context::Ctx;
use crate::evidence::{self, Smoke};
use crate::exit::{Kind, fail};
use crate::results;
use crate::runner;

/// Runs the smoke suite of a phase; returns the check failures it found (the evidence is
/// written either way).
pub fn run(
    ctx: &mut Ctx,
    config: &SmokeConfig,
    phase: Phase,
    vars: &Vars,
) -> anyhow::Result<Vec<String>> {
    let file = results_file(ctx, config, phase);
    run_command(ctx, config, phase, vars, &file)?;
    let tests = results::read(&file).map_err(|e| {
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
        Phase::After => evidence::read::<Smoke>(&ctx.workspace, "smoke-before.json")?,
        Phase::Before => None,
    };
    if let Some(before) = before {
        smoke.regressions = results::regressions(&before.tests, &smoke.tests);
    }
    evidence::write(
        &ctx.workspace,
        &format!("smoke-{}.json", phase.as_str()),
        &smoke,
    )?;
    print_counts(&smoke);
    Ok(problems(&smoke, config))
}

fn run_command(
    ctx: &mut Ctx,
    config: &SmokeConfig,
    phase: Phase,
    vars: &Vars,
    file: &Path,
) -> anyhow::Result<()> {
    let action = Action {
        name: "smoke".into(),
        playbook: None,
        command: Some(config.command.clone()),
        extra_vars: Default::default(),
        retries: 0,
        retry_delay: None,
        timeout: config.timeout,
        on_failure: Default::default(),
    };
    let label = format!("verify:{}/smoke#1", phase.as_str());
    let log = runner::log_path(&ctx.log_dir(), &label);
    let mut inv = action::invocation(ctx, &action, vars, label, log)?;
    if config.results == "stdout" {
        inv.stdout = Some(file.to_path_buf());
    }
    // Journaled like an action's attempt, so that its run time and log are on record; it
    // passes when it ran to the end: test runners exit non-zero when tests fail, and the
    // results decide, not the status.
    action::record_attempt(ctx, &action.name, 1, &inv)?;
    let ended = runner::run(&inv);
    ctx.provider.adopt(&mut ctx.journal)?;
    let ran = ended.as_ref().ok().copied();
    action::finish_attempt(ctx, ran, ran.is_some_and(|e| e != runner::Ended::TimedOut))?;
    let ended = ended?;
    if ended == runner::Ended::TimedOut {
        return Err(fail(
            Kind::Infra,
            format!("the smoke command {}", ended.describe(inv.timeout)),
        ));
    }
    Ok(())
}

fn results_file(ctx: &Ctx, config: &SmokeConfig, phase: Phase) -> PathBuf {
    if config.results == "stdout" {
        let dir = evidence::dir(&ctx.workspace);
        let _ = std::fs::create_dir_all(&dir);
        dir.join(format!("smoke-{}.subunit", phase.as_str()))
    } else {
        ctx.config.base_dir().join(&config.results)
    }
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
    println!(
        "--- smoke {}: {} tests, {} passed, {} failed, {} skipped, {} regressions",
        smoke.phase,
        c.tests,
        c.passed,
        c.failed,
        c.skipped,
        smoke.regressions.len()
    );
}
