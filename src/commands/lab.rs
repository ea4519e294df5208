//! What the commands open: the lab file, the workspace and its journal; and one step run
//! with the reports refreshed after it.

use crate::cli::Global;
use crate::config::{Config, RunParams};
use crate::context::{Ctx, Releases};
use crate::exit::{self, Kind, fail};
use crate::flow::Step;
use crate::reports;
use crate::steps;
use crate::workspace::journal;

/// Loads the lab file, its provider's section included (a usage error when it is bad),
/// without touching the workspace.
pub fn load_config(g: &Global) -> anyhow::Result<Config> {
    let mut config = Config::load(&g.config)?;
    config.run = RunParams {
        cloud: g.cloud.clone(),
        region: g.region.clone(),
    };
    crate::provider::from_config(&config, &g.workspace())?;
    Ok(config)
}

/// Opens the workspace for a step (see [`Ctx::open`]).
pub fn open(g: &Global, new_run: bool) -> anyhow::Result<Ctx> {
    // From here on a stop signal closes the journal instead of killing rollci.
    crate::signals::install()?;
    let releases = Releases {
        from: g.from_release.clone(),
        to: g.to_release.clone(),
    };
    for (flag, value) in [("from", &releases.from), ("to", &releases.to)] {
        if let Some(value) = value {
            crate::config::validate::check_release(value).map_err(|m| {
                fail(
                    Kind::Usage,
                    format!(
                        "--{flag}-release (or ROLLCI_{}_RELEASE): {m}",
                        flag.to_uppercase()
                    ),
                )
            })?;
        }
    }
    Ctx::open(load_config(g)?, &g.workspace(), &releases, new_run)
}

/// Runs a step, then refreshes the reports so they show its outcome whatever it was.
pub fn step(ctx: &mut Ctx, step: Step) -> anyhow::Result<()> {
    let result = steps::run(ctx, step);
    if let Err(err) = reports::refresh(&ctx.journal.state, &ctx.workspace) {
        crate::say!("!!! could not write the reports: {err:#}");
    }
    result
}

/// A step subcommand: open the workspace (a new run for `provision`), run the step.
pub fn step_command(g: &Global, step: Step) -> anyhow::Result<u8> {
    let mut ctx = open(g, step == Step::Provision)?;
    self::step(&mut ctx, step)?;
    Ok(exit::OK)
}

/// Reads a workspace's journal without locking it (`status`, `inventory`, `monitor`).
pub fn read_state(g: &Global) -> anyhow::Result<journal::State> {
    let workspace = g.workspace();
    let state = journal::read(&workspace)?.ok_or_else(|| {
        fail(
            Kind::Usage,
            format!(
                "no state journal in `{}`: nothing has run there yet",
                workspace.display()
            ),
        )
    })?;
    Ok(state.settled())
}
