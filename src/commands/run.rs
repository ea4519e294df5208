//! `rollci run`: every step in order; the first failure stops the flow, report and cleanup
//! always run. A run that stopped before its end (a killed rollci) is resumed at its first
//! step that did not pass. A stop signal ends the step it hits; the report is still
//! written (unless a second signal came) and cleanup always runs.

use super::lab;
use crate::cli::Global;
use crate::context::Ctx;
use crate::exit::{self, Kind};
use crate::flow::{self, FLOW, Step};
use crate::signals;
use crate::workspace::journal;

pub fn run(g: &Global) -> anyhow::Result<u8> {
    let mut ctx = lab::open(g, true)?;
    let first = flow::resume_point(&ctx.journal.state);
    if first > 0 {
        let done: Vec<String> = FLOW[..first].iter().map(|s| s.label()).collect();
        crate::say!(
            "--- resuming run {}: {} passed already, continuing at {} \
             (to start afresh: `rollci cleanup`, then `rollci run`)",
            ctx.journal.state.run_id,
            done.join(", "),
            FLOW.get(first).map_or("report".into(), |s| s.label())
        );
    }
    let mut first_error = None;
    for step in &FLOW[first..] {
        if let Err(err) = lab::step(&mut ctx, *step) {
            first_error = Some(err);
            break;
        }
    }
    let reported = report(&mut ctx, first_error.as_ref());
    let cleaned = lab::step(&mut ctx, Step::Cleanup);
    print_where(&ctx);
    first_error.map(Err).unwrap_or(reported).and(cleaned)?;
    // A stop signal that came after the last check (during the report or cleanup, which
    // finish what they started) still makes the build an aborted one, never a pass.
    if signals::count() > 0 {
        return Err(signals::aborted().context("the stop signal came after the flow's steps"));
    }
    Ok(exit::OK)
}

/// The report, unless a second stop signal asked to go straight to cleanup.
fn report(ctx: &mut Ctx, failure: Option<&anyhow::Error>) -> anyhow::Result<()> {
    let aborted = failure.is_some_and(|e| exit::kind_of(e) == Kind::Aborted);
    if aborted || signals::count() == 1 {
        crate::say!(
            "!!! {}: writing the report, then cleaning up (a second signal skips the report)",
            signals::aborted()
        );
    }
    if signals::count() >= 2 {
        crate::say!("!!! second stop signal: skipping the report, cleaning up");
        return Ok(());
    }
    lab::step(ctx, Step::Report)
}

fn print_where(ctx: &Ctx) {
    crate::say!(
        "--- state:   {}",
        journal::state_path(&ctx.workspace).display()
    );
    crate::say!("--- logs:    {}", ctx.log_dir().display());
    crate::say!("--- reports: {}", ctx.workspace.join("reports").display());
}
