//! `cleanup`: destroy everything the journal says exists, then say whether the flow was
//! complete (an incomplete flow is never silent).

use crate::context::Ctx;
use crate::exit::{Kind, fail};
use crate::flow;
use crate::teardown;

pub fn run(ctx: &mut Ctx) -> anyhow::Result<()> {
    let tally = teardown::destroy(ctx, |_| true)?;
    crate::say!(
        "--- cleanup: {} destroyed, {} already gone, {} failed",
        tally.destroyed,
        tally.already_gone,
        tally.failed.len()
    );
    let missing = flow::incomplete(&ctx.journal.state);
    if missing.is_empty() {
        crate::say!("--- flow complete: every step ran and passed");
    } else {
        crate::say!("!!! INCOMPLETE FLOW: {}", missing.join(", "));
    }
    if !tally.failed.is_empty() {
        return Err(fail(
            Kind::Infra,
            format!(
                "cleanup could not destroy {} resource(s), run `rollci cleanup` again: {}",
                tally.failed.len(),
                tally.failed.join("; ")
            ),
        ));
    }
    Ok(())
}
