//! `rollci cleanup`: destroy everything the journal knows of, then say whether the flow
//! was complete.

use super::lab;
use crate::cli::Global;
use crate::exit;
use crate::flow::{self, Step};

pub fn run(g: &Global) -> anyhow::Result<u8> {
    let mut ctx = lab::open(g, false)?;
    // Jenkins runs cleanup in a stage and again in `post { always }`: the second finds a
    // finished journal and must neither redo nor re-record it.
    if ctx.journal.state.live().next().is_none() && flow::cleaned_up(&ctx.journal.state) {
        crate::say!(
            "--- cleanup: nothing left to destroy (run {} is clean)",
            ctx.journal.state.run_id
        );
        return Ok(exit::OK);
    }
    lab::step(&mut ctx, Step::Cleanup)?;
    Ok(exit::OK)
}
