//! `rollci verify --phase before|after`: the checks of one side of the upgrade.

use super::lab;
use crate::cli::Global;
use crate::flow::{Phase, Step};

pub fn run(g: &Global, phase: Phase) -> anyhow::Result<u8> {
    lab::step_command(g, Step::Verify(phase))
}
