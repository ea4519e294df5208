//! `verify --phase before|after`: the lab's verification actions, the persistent resources
//! and the smoke suite. Every part runs and leaves its evidence; their check failures are
//! reported together.

use anyhow::Context;
use serde_json::json;

use super::action::{self, Vars, base_vars};
use std::path::Path;

use crate::checks::{persistent, rally, smoke};
use crate::config::{Action, RallyConfig, SmokeConfig};
use crate::context::Ctx;
use crate::exec::runner::{Ended, Invocation};
use crate::exit::{self, Kind, fail};
use crate::flow::Phase;

pub fn run(ctx: &mut Ctx, phase: Phase) -> anyhow::Result<()> {
    ctx.require_lab()?;
    let expected = match phase {
        Phase::Before => ctx.journal.state.from_release.clone(),
        Phase::After => ctx.journal.state.to_release.clone(),
    };
    let mut vars = base_vars(ctx, "verify", &expected);
    vars.insert("rollci_phase".into(), json!(phase.as_str()));
    vars.insert("rollci_expected_release".into(), json!(expected));
    let label = format!("verify:{}", phase.as_str());
    let actions = ctx.config.verify.actions.clone();
    let mut problems = Vec::new();
    if let Err(err) = action::run_all(ctx, &label, &actions, vars.clone()) {
        match reclassify_as_check(err) {
            e if exit::kind_of(&e) == Kind::Check => problems.push(format!("{e:#}")),
            e => return Err(e),
        }
    }
    problems.extend(match phase {
        Phase::Before => persistent::create_all(ctx)?,
        Phase::After => persistent::verify_all(ctx)?,
    });
    if let Some(config) = ctx.config.verify.smoke.clone() {
        let file = smoke::results_file(&ctx.workspace, &ctx.config.base_dir(), &config, phase);
        run_smoke(ctx, &config, phase, &vars, &file)?;
        problems.extend(smoke::judge(&ctx.workspace, &config, phase, &file)?);
    }
    if let Some(config) = ctx.config.verify.rally.clone() {
        let file = rally::report_file(&ctx.workspace, phase);
        run_rally(ctx, &config, phase, &vars, &file)?;
        problems.extend(rally::judge(&ctx.workspace, &config, phase, &file)?);
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(fail(Kind::Check, problems.join("; ")))
    }
}

/// A failed verification is the system under test failing a check, unless the tooling
/// itself broke (an unreachable host, a missing tool).
fn reclassify_as_check(err: anyhow::Error) -> anyhow::Error {
    if exit::kind_of(&err) == Kind::Infra && action::is_action_failure(&err) {
        let message = format!("{err:#}");
        fail(Kind::Check, message)
    } else {
        err
    }
}

/// Runs the Rally command; it writes its report to `$ROLLCI_RALLY_REPORT`. A stale report
/// of an earlier try is removed first, so an old file can never pass for this run's.
fn run_rally(
    ctx: &mut Ctx,
    config: &RallyConfig,
    phase: Phase,
    vars: &Vars,
    file: &Path,
) -> anyhow::Result<()> {
    match std::fs::remove_file(file) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("failed to remove `{}`", file.display()));
        }
        _ => {}
    }
    let report = file.display().to_string();
    run_command(
        ctx,
        ("rally", "Rally"),
        &config.command,
        config.timeout,
        phase,
        vars,
        |inv| inv.env.push(("ROLLCI_RALLY_REPORT".into(), report)),
    )
}

/// Runs the smoke command, its stdout captured into `file` when the results are there.
fn run_smoke(
    ctx: &mut Ctx,
    config: &SmokeConfig,
    phase: Phase,
    vars: &Vars,
    file: &Path,
) -> anyhow::Result<()> {
    let stdout = (config.results == "stdout").then(|| file.to_path_buf());
    run_command(
        ctx,
        ("smoke", "smoke"),
        &config.command,
        config.timeout,
        phase,
        vars,
        |inv| inv.stdout = stdout,
    )
}

/// Runs a suite's command (the smoke suite, Rally) as an unretried attempt of this step
/// named `name.0`, so its run time and log are on record. It passes when it ran to its end:
/// test runners exit non-zero when tests fail, and the results decide, not the status.
fn run_command(
    ctx: &mut Ctx,
    (name, title): (&str, &str),
    argv: &[String],
    timeout: Option<std::time::Duration>,
    phase: Phase,
    vars: &Vars,
    adjust: impl FnOnce(&mut Invocation),
) -> anyhow::Result<()> {
    let action = Action {
        name: name.into(),
        playbook: None,
        command: Some(argv.to_vec()),
        extra_vars: Default::default(),
        retries: 0,
        retry_delay: None,
        timeout,
        on_failure: Default::default(),
    };
    let label = format!("verify:{}/{name}#1", phase.as_str());
    let log = ctx.attempt_log(&label);
    let mut inv = action::invocation(ctx, &action, vars, label, log)?;
    adjust(&mut inv);
    let ended = action::attempt_of(ctx, &action.name, 1, &inv, |e| e != Ended::TimedOut)?;
    if ended == Ended::TimedOut {
        return Err(fail(
            Kind::Infra,
            format!("the {title} command {}", ended.describe(inv.timeout)),
        ));
    }
    Ok(())
}
