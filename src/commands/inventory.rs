//! `rollci inventory`: the Ansible inventory of the current lab, for debugging by hand.

use super::lab;
use crate::cli::Global;
use crate::exit;

pub fn run(g: &Global) -> anyhow::Result<u8> {
    let state = lab::read_state(g)?;
    crate::show!("{}", crate::exec::ansible::inventory(&state)?);
    Ok(exit::OK)
}
