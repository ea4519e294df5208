//! `rollci provision`: acquire the host, prepare it, build the lab on it, prepare its VMs.

use super::lab;
use crate::cli::Global;
use crate::flow::Step;

pub fn run(g: &Global, acquire_only: bool) -> anyhow::Result<u8> {
    let mut ctx = lab::open(g, true)?;
    ctx.acquire_only = acquire_only;
    lab::step(&mut ctx, Step::Provision)?;
    Ok(crate::exit::OK)
}
