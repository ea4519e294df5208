//! `upgrade`: to the to-release, all at once or one component at a time, with the
//! availability probes running for exactly the upgrade's duration.

use anyhow::Context;
use serde_json::json;

use super::action::{self, base_vars};
use crate::checks::availability;
use crate::config::{Action, UpgradeMode};
use crate::context::Ctx;

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
