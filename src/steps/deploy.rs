//! `deploy`: the from-release, by the lab's deploy actions.

use super::action::{self, base_vars};
use crate::context::Ctx;

pub fn run(ctx: &mut Ctx) -> anyhow::Result<()> {
    ctx.require_lab()?;
    let release = ctx.journal.state.from_release.clone();
    let actions = ctx.config.deploy.actions.clone();
    action::run_all(ctx, "deploy", &actions, base_vars(ctx, "deploy", &release))
}
