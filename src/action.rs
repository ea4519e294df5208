//! One configured action (a playbook or a command) run with its retries, timeout and
//! teardown-on-failure, each attempt journaled with its log.

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::Context;
use chrono::Utc;
use serde_json::{Map, Value};

use crate::ansible;
use crate::cleanup;
use crate::config::{Action, Teardown};
use crate::context::Ctx;
use crate::journal::{Attempt, Outcome};
use crate::procs::RUN_MARKER;
use crate::runner::{self, Ended, Invocation};
use crate::tools::Tool;

/// Variables handed to an action.
pub type Vars = Map<String, Value>;

/// An action that ran and failed (as opposed to one that could not be started).
#[derive(Debug, thiserror::Error)]
#[error("action `{action}` failed after {attempts} attempt(s): {how} (log: {log})")]
pub struct ActionFailed {
    pub action: String,
    pub attempts: u32,
    pub how: String,
    pub log: String,
}

/// Whether an error is an action that ran and failed.
pub fn is_action_failure(err: &anyhow::Error) -> bool {
    err.chain()
        .any(|c| c.downcast_ref::<ActionFailed>().is_some())
}

/// Runs an action until it passes or its retries run out.
pub fn run(ctx: &mut Ctx, step: &str, action: &Action, vars: &Vars) -> anyhow::Result<()> {
    let mut vars = vars.clone();
    for (key, value) in &action.extra_vars {
        // rollci's own variables win: a lab file cannot change the release under test.
        if !vars.contains_key(key) {
            vars.insert(key.clone(), serde_json::to_value(value)?);
        }
    }
    let total = action.retries + 1;
    for attempt in 1..=total {
        if attempt > 1 {
            restore(ctx, action.on_failure)?;
            if let Some(delay) = action.retry_delay {
                std::thread::sleep(delay);
            }
        }
        let (ended, inv) = run_attempt(ctx, step, action, &vars, attempt)?;
        if ended.success() {
            return Ok(());
        }
        println!(
            "!!! {step}/{} attempt {attempt}/{total} failed: {}{}",
            action.name,
            ended.describe(inv.timeout),
            ansible_meaning(action, ended)
        );
        cleanup::teardown(ctx, action.on_failure)?;
        if attempt == total {
            return Err(ActionFailed {
                action: action.name.clone(),
                attempts: total,
                how: ended.describe(inv.timeout),
                log: inv.log.display().to_string(),
            }
            .into());
        }
    }
    Ok(())
}

/// Rebuilds what a teardown removed before the next attempt.
fn restore(ctx: &mut Ctx, teardown: Teardown) -> anyhow::Result<()> {
    match teardown {
        Teardown::None => Ok(()),
        Teardown::Virtual => ctx.provider.build(&mut ctx.journal),
        Teardown::Host => {
            ctx.provider.acquire(&mut ctx.journal)?;
            ctx.provider.build(&mut ctx.journal)
        }
    }
}

fn run_attempt(
    ctx: &mut Ctx,
    step: &str,
    action: &Action,
    vars: &Vars,
    attempt: u32,
) -> anyhow::Result<(Ended, Invocation)> {
    let label = format!("{step}/{}#{attempt}", action.name);
    let log = runner::log_path(&ctx.log_dir(), &label);
    let inv = invocation(ctx, action, vars, label, log)?;
    record_attempt(ctx, &action.name, attempt, &inv)?;
    let ended = runner::run(&inv);
    ctx.provider.adopt(&mut ctx.journal)?;
    let ran = ended.as_ref().ok().copied();
    finish_attempt(ctx, ran, ran.is_some_and(Ended::success))?;
    Ok((ended?, inv))
}

/// The invocation of an action's attempt (also used for the smoke command).
pub fn invocation(
    ctx: &Ctx,
    action: &Action,
    vars: &Vars,
    label: String,
    log: PathBuf,
) -> anyhow::Result<Invocation> {
    let base = ctx.config.base_dir();
    let tmp = ansible::temp_dir(&ctx.workspace);
    std::fs::create_dir_all(&tmp)
        .with_context(|| format!("failed to create `{}`", tmp.display()))?;
    let mut env = ansible::environment(&ctx.workspace);
    env.push((RUN_MARKER.into(), ctx.journal.state.run_id.clone()));
    env.push((
        "ROLLCI_VARS".into(),
        Value::Object(vars.clone()).to_string(),
    ));
    for h in &ctx.journal.state.hosts {
        let name = format!("ROLLCI_HOST_{}", h.name.to_uppercase().replace('-', "_"));
        env.push((name, format!("{}:{}", h.address, h.port)));
    }
    let exported = vars.iter().filter(|(k, _)| k.starts_with("rollci_"));
    env.extend(exported.filter_map(|(k, v)| Some((k.to_uppercase(), v.as_str()?.to_string()))));
    let timeout = action.timeout.unwrap_or(ctx.config.lab.default_timeout);
    let (program, args) = match (&action.playbook, &action.command) {
        (Some(playbook), _) => {
            let program = Tool::new("ansible-playbook", "playbook actions").locate()?;
            let inventory = ansible::write_inventory(&ctx.journal.state, &ctx.workspace)?;
            let playbook = std::path::absolute(base.join(playbook))?;
            std::fs::create_dir_all(ctx.log_dir())?;
            let vars_file = log.with_extension("vars.yml");
            ansible::write_vars(&Value::Object(vars.clone()), &vars_file)?;
            (
                program,
                ansible::playbook_args(&inventory, &playbook, &vars_file),
            )
        }
        (None, Some(argv)) => {
            let program = Tool::new(&argv[0], "a command action").locate()?;
            let args: Vec<OsString> = argv[1..].iter().map(OsString::from).collect();
            (program, args)
        }
        (None, None) => anyhow::bail!("action `{}` has nothing to run", action.name),
    };
    Ok(Invocation {
        program,
        args,
        env,
        cwd: base,
        timeout,
        label,
        log,
        stdout: None,
    })
}

/// Journals an attempt of the action named `name` as running, before it starts.
pub(crate) fn record_attempt(
    ctx: &mut Ctx,
    name: &str,
    attempt: u32,
    inv: &Invocation,
) -> anyhow::Result<()> {
    let record = ctx
        .journal
        .state
        .steps
        .last_mut()
        .context("no open step record")?;
    record.attempts.push(Attempt {
        action: name.to_string(),
        attempt,
        started: Utc::now(),
        ended: None,
        outcome: Outcome::Running,
        exit_code: None,
        log: inv.log.clone(),
    });
    ctx.journal.save()
}

/// Closes the last attempt: how it ended (`None`: it could not be run) and whether that
/// counts as passed, which the caller decides (a test runner's exit status does not).
pub(crate) fn finish_attempt(
    ctx: &mut Ctx,
    ended: Option<Ended>,
    passed: bool,
) -> anyhow::Result<()> {
    let record = ctx
        .journal
        .state
        .steps
        .last_mut()
        .context("no open step record")?;
    if let Some(a) = record.attempts.last_mut() {
        a.ended = Some(Utc::now());
        a.exit_code = ended.map(Ended::code);
        a.outcome = if passed {
            Outcome::Passed
        } else {
            Outcome::Failed
        };
    }
    ctx.journal.save()
}

fn ansible_meaning(action: &Action, ended: Ended) -> String {
    match (action.playbook.is_some(), ended) {
        (true, Ended::Exited(code)) => format!(" ({})", ansible::meaning(code)),
        _ => String::new(),
    }
}
