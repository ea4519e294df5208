//! `upgrade`: to the to-release, all at once or one component at a time, with the
//! availability probes running for exactly the upgrade's duration.

use anyhow::Context;
use serde_json::json;

use super::action::{self, base_vars};
use crate::checks::availability;
use crate::config::{Action, UpgradeMode};
use crate::context::Ctx;
use crate::workspace::journal::Outcome;

pub fn run(ctx: &mut Ctx) -> anyhow::Result<()> {
    ctx.require_lab()?;
    let release = ctx.journal.state.to_release.clone();
    let upgrade = ctx.config.upgrade.clone();
    let vars = base_vars(ctx, "upgrade", &release);
    let actions: Vec<Action> = match upgrade.mode {
        UpgradeMode::AllAtOnce => vec![
            upgrade
                .action
                .context("all-at-once upgrade without an action")?,
        ],
        UpgradeMode::Rolling => upgrade.components.clone(),
    };
    let actions = resumed(ctx, actions);
    if actions.is_empty() {
        crate::say!("--- upgrade: every component passed already (`--restart` redoes them)");
        return Ok(());
    }
    let mut watch = availability::Watch::start(ctx)?;
    let mut result = Ok(());
    for action in &actions {
        let mut vars = vars.clone();
        if upgrade.mode == UpgradeMode::Rolling {
            vars.insert("rollci_component".into(), json!(action.name));
        }
        watch.begin(&action.name);
        result = action::run_all(ctx, "upgrade", std::slice::from_ref(action), vars);
        watch.end();
        if result.is_err() {
            break;
        }
    }
    // The evidence is written whatever happened; an infrastructure failure outranks the
    // downtime verdict.
    let verdict = watch.finish(ctx);
    result.and(verdict)
}

/// The components left to upgrade: a re-run continues after the leading components that
/// passed in this run's earlier upgrade records (as openstack-ansible's `run-upgrade.sh`
/// resumes from its markers), unless `--restart`.
fn resumed(ctx: &Ctx, actions: Vec<Action>) -> Vec<Action> {
    let steps = &ctx.journal.state.steps;
    let earlier = &steps[..steps.len().saturating_sub(1)];
    let passed = |name: &str| {
        earlier.iter().filter(|s| s.step == "upgrade").any(|s| {
            s.attempts
                .iter()
                .any(|a| a.action == name && a.outcome == Outcome::Passed)
        })
    };
    let done = match ctx.restart_upgrade {
        true => 0,
        false => actions.iter().take_while(|a| passed(&a.name)).count(),
    };
    if done > 0 {
        let names: Vec<&str> = actions[..done].iter().map(|a| a.name.as_str()).collect();
        crate::say!(
            "--- upgrade: skipping {} (passed in an earlier attempt of this run; `--restart` redoes them)",
            names.join(", ")
        );
    }
    actions.into_iter().skip(done).collect()
}

#[cfg(test)]
mod tests {
    use crate::exec::runner::Ended;
    use crate::flow::Step;
    use crate::testing;

    const ROLLING: &str = "[upgrade]\nmode = \"rolling\"\n\
        [[upgrade.components]]\nname = \"c1\"\ncommand = [\"true\"]\n\
        [[upgrade.components]]\nname = \"c2\"\ncommand = [\"true\"]\n\
        [[upgrade.components]]\nname = \"c3\"\ncommand = [\"true\"]\n";

    fn runs(calls: &testing::Calls) -> Vec<String> {
        let runs = calls
            .borrow()
            .iter()
            .filter(|c| c.starts_with("run"))
            .cloned()
            .collect();
        calls.borrow_mut().clear();
        runs
    }

    #[test]
    fn a_rerun_continues_after_the_components_that_passed_and_restart_redoes_them() {
        let ws = tempfile::tempdir().unwrap();
        let failed_once = std::cell::Cell::new(false);
        let script = move |label: &str| {
            if label.starts_with("upgrade/c2") && !failed_once.replace(true) {
                Ended::Exited(2)
            } else {
                Ended::Exited(0)
            }
        };
        let (mut ctx, fakes) = testing::ctx(ws.path(), testing::config(ROLLING), script);
        ctx.provider.acquire(&mut ctx.journal).unwrap();
        assert!(crate::steps::run(&mut ctx, Step::Upgrade).is_err());
        assert_eq!(runs(&fakes.calls), ["run upgrade/c1#1", "run upgrade/c2#1"]);
        crate::steps::run(&mut ctx, Step::Upgrade).unwrap();
        assert_eq!(runs(&fakes.calls), ["run upgrade/c2#1", "run upgrade/c3#1"]);
        crate::steps::run(&mut ctx, Step::Upgrade).unwrap();
        assert!(runs(&fakes.calls).is_empty(), "every component passed");
        ctx.restart_upgrade = true;
        crate::steps::run(&mut ctx, Step::Upgrade).unwrap();
        assert_eq!(runs(&fakes.calls).len(), 3);
        let logs: Vec<_> = ctx
            .journal
            .state
            .steps
            .iter()
            .flat_map(|s| &s.attempts)
            .map(|a| a.log.clone())
            .collect();
        let unique: std::collections::BTreeSet<_> = logs.iter().collect();
        assert_eq!(
            unique.len(),
            logs.len(),
            "every attempt keeps its own log: {logs:?}"
        );
    }
}
