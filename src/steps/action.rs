//! One configured action (a playbook or a command) run with its retries, timeout and
//! teardown-on-failure, each attempt journaled with its log; and the variables and action
//! lists the steps share.

pub use crate::attempt::{Vars, attempt_of, base_vars, invocation};
use crate::config::{Action, Teardown};
use crate::context::Ctx;
use crate::exec::ansible;
use crate::exec::runner::{Ended, Invocation};
use crate::teardown;

/// Runs actions in order; the first that fails (after its retries) stops the list.
pub fn run_all(ctx: &mut Ctx, label: &str, actions: &[Action], vars: Vars) -> anyhow::Result<()> {
    for a in actions {
        run(ctx, label, a, &vars)?;
    }
    Ok(())
}

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
        crate::signals::check()?;
        if attempt > 1 {
            restore(ctx, action.on_failure)?;
            if let Some(delay) = action.retry_delay {
                crate::signals::sleep(delay)?;
            }
        }
        let (ended, inv) = run_attempt(ctx, step, action, &vars, attempt)?;
        if ended.success() {
            return Ok(());
        }
        if let Ended::Aborted(_) = ended {
            // Stopping, not failing: no retry, no teardown (cleanup decides what goes).
            return Err(crate::signals::aborted().context(format!(
                "`{}` was stopped (log: {})",
                action.name,
                inv.log.display()
            )));
        }
        crate::say!(
            "!!! {step}/{} attempt {attempt}/{total} failed: {}{}",
            action.name,
            ended.describe(inv.timeout),
            ansible_meaning(action, ended)
        );
        teardown::teardown(ctx, action.on_failure)?;
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
    let log = ctx.attempt_log(&label);
    let inv = invocation(ctx, action, vars, label, log)?;
    let ended = attempt_of(ctx, &action.name, attempt, &inv, Ended::success)?;
    Ok((ended, inv))
}

fn ansible_meaning(action: &Action, ended: Ended) -> String {
    match (action.playbook.is_some(), ended) {
        (true, Ended::Exited(code)) => format!(" ({})", ansible::meaning(code)),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::runner::Ended;
    use crate::testing;
    use crate::workspace::journal::{Outcome, StepRecord};

    fn open_step(ctx: &mut Ctx) {
        ctx.journal.state.steps.push(StepRecord {
            step: "deploy".into(),
            phase: None,
            started: chrono::Utc::now(),
            ended: None,
            outcome: Outcome::Running,
            exit_code: None,
            error: None,
            attempts: Vec::new(),
            owner: None,
        });
    }

    fn action(extra: &str) -> Action {
        let config = testing::config(&format!(
            "[[deploy.actions]]\nname = \"d\"\ncommand = [\"true\"]\n{extra}"
        ));
        config.deploy.actions[0].clone()
    }

    /// A script: the first `fails` attempts exit 2, the rest pass.
    fn failing(fails: u32) -> impl Fn(&str) -> Ended {
        let seen = std::cell::Cell::new(0);
        move |_| {
            seen.set(seen.get() + 1);
            if seen.get() <= fails {
                Ended::Exited(2)
            } else {
                Ended::Exited(0)
            }
        }
    }

    #[test]
    fn an_action_is_retried_until_it_passes_each_attempt_journaled() {
        let ws = tempfile::tempdir().unwrap();
        let (mut ctx, fakes) = testing::ctx(ws.path(), testing::config(""), failing(2));
        open_step(&mut ctx);
        run(&mut ctx, "deploy", &action("retries = 3"), &Vars::new()).unwrap();
        let attempts = &ctx.journal.state.steps[0].attempts;
        let outcomes: Vec<_> = attempts.iter().map(|a| (a.attempt, a.outcome)).collect();
        assert_eq!(
            outcomes,
            [
                (1, Outcome::Failed),
                (2, Outcome::Failed),
                (3, Outcome::Passed)
            ]
        );
        assert_eq!(attempts[0].exit_code, Some(2));
        let runs: Vec<_> = fakes
            .calls
            .borrow()
            .iter()
            .filter(|c| c.starts_with("run"))
            .cloned()
            .collect();
        assert_eq!(runs, ["run deploy/d#1", "run deploy/d#2", "run deploy/d#3"]);
    }

    #[test]
    fn retries_run_out_into_an_action_failure_naming_its_log() {
        let ws = tempfile::tempdir().unwrap();
        let (mut ctx, _fakes) = testing::ctx(ws.path(), testing::config(""), failing(9));
        open_step(&mut ctx);
        let err = run(&mut ctx, "deploy", &action("retries = 1"), &Vars::new()).unwrap_err();
        assert!(is_action_failure(&err));
        let text = format!("{err:#}");
        assert!(text.contains("after 2 attempt(s): exit status 2"), "{text}");
        assert!(text.contains("01-deploy-d-2.log"), "{text}");
    }

    #[test]
    fn on_failure_virtual_destroys_vms_then_state_and_rebuilds_before_the_next_attempt() {
        let ws = tempfile::tempdir().unwrap();
        let (mut ctx, fakes) = testing::ctx(ws.path(), testing::config(""), failing(1));
        ctx.provider.acquire(&mut ctx.journal).unwrap();
        ctx.provider.build(&mut ctx.journal).unwrap();
        let calls = fakes.calls.clone();
        calls.borrow_mut().clear();
        open_step(&mut ctx);
        let a = action("retries = 1\non_failure = \"virtual\"");
        run(&mut ctx, "deploy", &a, &Vars::new()).unwrap();
        assert_eq!(
            *calls.borrow(),
            [
                "run deploy/d#1",
                "find_strays",
                "destroy vm1",
                "destroy state",
                "build",
                "run deploy/d#2"
            ]
        );
        let host = ctx
            .journal
            .state
            .live()
            .filter(|r| r.name == "host")
            .count();
        assert_eq!(host, 1, "the host stays");
    }

    #[test]
    fn on_failure_host_destroys_everything_and_acquires_again() {
        let ws = tempfile::tempdir().unwrap();
        let (mut ctx, fakes) = testing::ctx(ws.path(), testing::config(""), failing(1));
        ctx.provider.acquire(&mut ctx.journal).unwrap();
        ctx.provider.build(&mut ctx.journal).unwrap();
        let calls = fakes.calls.clone();
        calls.borrow_mut().clear();
        open_step(&mut ctx);
        run(
            &mut ctx,
            "deploy",
            &action("retries = 1\non_failure = \"host\""),
            &Vars::new(),
        )
        .unwrap();
        let calls = calls.borrow();
        assert_eq!(
            calls[..7],
            [
                "run deploy/d#1",
                "find_strays",
                "destroy vm1",
                "destroy state",
                "destroy host",
                "acquire",
                "build"
            ]
        );
        assert_eq!(
            ctx.journal.state.live().count(),
            3,
            "host, state and vm1 anew"
        );
    }

    #[test]
    fn rollci_variables_win_over_the_lab_files_extra_vars() {
        let ws = tempfile::tempdir().unwrap();
        let (mut ctx, fakes) = testing::ctx(ws.path(), testing::config(""), failing(0));
        open_step(&mut ctx);
        let a = action("extra_vars = { rollci_release = \"Z\", mine = \"x\" }");
        let vars = base_vars(&ctx, "deploy", "A");
        run(&mut ctx, "deploy", &a, &vars).unwrap();
        let inv = fakes.seen.borrow()[0].clone();
        let env: std::collections::BTreeMap<_, _> = inv.env.into_iter().collect();
        assert_eq!(env["ROLLCI_RELEASE"], "A");
        let all: serde_json::Value = serde_json::from_str(&env["ROLLCI_VARS"]).unwrap();
        assert_eq!(all["rollci_release"], "A");
        assert_eq!(all["mine"], "x");
        assert_eq!(env["ROLLCI_RUN_ID"], ctx.journal.state.run_id);
    }
}
