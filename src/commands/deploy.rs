//! `rollci deploy`: deploy the from-release.

use super::lab;
use crate::cli::Global;
use crate::flow::Step;

pub fn run(g: &Global) -> anyhow::Result<u8> {
    lab::step_command(g, Step::Deploy)
}
