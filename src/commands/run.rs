//! `rollci run`: every step in order; the first failure stops the flow, report and cleanup
//! always run.

use super::lab;
use crate::cli::Global;
use crate::context::Ctx;
use crate::exit;
use crate::flow::{FLOW, Step};
use crate::workspace::journal;

pub fn run(g: &Global) -> anyhow::Result<u8> {
    let mut ctx = lab::open(g, true)?;
    let mut first_error = None;
    for step in FLOW {
        if let Err(err) = lab::step(&mut ctx, step) {
            first_error = Some(err);
            break;
        }
    }
    let reported = lab::step(&mut ctx, Step::Report);
    let cleaned = lab::step(&mut ctx, Step::Cleanup);
    print_where(&ctx);
    first_error.map(Err).unwrap_or(reported).and(cleaned)?;
    Ok(exit::OK)
}

fn print_where(ctx: &Ctx) {
    println!(
        "--- state:   {}",
        journal::state_path(&ctx.workspace).display()
    );
    println!("--- logs:    {}", ctx.log_dir().display());
    println!("--- reports: {}", ctx.workspace.join("reports").display());
}
