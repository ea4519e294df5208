//! `rollci provision`: acquire the host, prepare it, build the lab on it, prepare its VMs.

use super::lab;
use crate::cli::Global;
use crate::flow::Step;

pub fn run(g: &Global) -> anyhow::Result<u8> {
    lab::step_command(g, Step::Provision)
}
