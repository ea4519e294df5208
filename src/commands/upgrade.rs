//! `rollci upgrade [--restart]`: upgrade to the to-release with the probes running.

use super::lab;
use crate::cli::Global;
use crate::exit;
use crate::flow::Step;

pub fn run(g: &Global, restart: bool) -> anyhow::Result<u8> {
    let mut ctx = lab::open(g, false)?;
    ctx.restart_upgrade = restart;
    lab::step(&mut ctx, Step::Upgrade)?;
    Ok(exit::OK)
}
