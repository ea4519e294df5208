//! `rollci report`: write the reports (and push them to Elasticsearch when configured).

use super::lab;
use crate::cli::Global;
use crate::flow::Step;

pub fn run(g: &Global) -> anyhow::Result<u8> {
    lab::step_command(g, Step::Report)
}
