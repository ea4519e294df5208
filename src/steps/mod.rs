//! The pipeline steps, one file each: every step runs under a journal record and a banner,
//! and leaves that record closed whatever happens. Steps return; the caller refreshes the
//! reports (see [`crate::reports::refresh`]).

pub mod action;
mod cleanup;
mod deploy;
mod provision;
mod report;
mod upgrade;
mod verify;

use std::time::Instant;

use crate::context::Ctx;
use crate::exit;
use crate::flow::Step;
use crate::workspace::journal::{Outcome, ProcessId, StepRecord};
use chrono::Utc;

/// Runs one step under a journal record and (except for the quiet `report`) a banner.
pub fn run(ctx: &mut Ctx, step: Step) -> anyhow::Result<()> {
    if step == Step::Report {
        return recorded(ctx, step, report::run);
    }
    // Cleanup finishes what it started, whatever signal comes meanwhile.
    let _shield = (step == Step::Cleanup).then(crate::signals::shield);
    banner(ctx, &step.label());
    let started = Instant::now();
    let result = recorded(ctx, step, |ctx| body(ctx, step));
    outcome_banner(&step.label(), &result, started);
    result
}

fn body(ctx: &mut Ctx, step: Step) -> anyhow::Result<()> {
    match step {
        Step::Provision => provision::run(ctx),
        Step::Deploy => deploy::run(ctx),
        Step::Verify(phase) => verify::run(ctx, phase),
        Step::Upgrade => upgrade::run(ctx),
        Step::Report => report::run(ctx),
        Step::Cleanup => cleanup::run(ctx),
    }
}

/// Opens the step's record, runs `work`, reconciles the journal with what exists, and
/// closes the record with the result.
fn recorded(
    ctx: &mut Ctx,
    step: Step,
    work: impl FnOnce(&mut Ctx) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    begin(ctx, step)?;
    let result = work(ctx);
    let _ = ctx.provider.reconcile(&mut ctx.journal);
    end(ctx, &result)?;
    result
}

/// Opens a step record (saved, so a killed step shows in the journal).
fn begin(ctx: &mut Ctx, step: Step) -> anyhow::Result<()> {
    ctx.journal.state.steps.push(StepRecord {
        step: step.name().to_string(),
        phase: step.phase().map(str::to_string),
        started: Utc::now(),
        ended: None,
        outcome: Outcome::Running,
        exit_code: None,
        error: None,
        attempts: Vec::new(),
        owner: ProcessId::me(),
    });
    ctx.journal.save()?;
    crate::faultpoint::reached(|| format!("step:{}", step.name()));
    Ok(())
}

/// Closes the open step record with the result.
fn end(ctx: &mut Ctx, result: &anyhow::Result<()>) -> anyhow::Result<()> {
    if let Some(record) = ctx.journal.state.steps.last_mut() {
        record.ended = Some(Utc::now());
        record.outcome = match result {
            Ok(()) => Outcome::Passed,
            Err(e) if exit::kind_of(e) == exit::Kind::Aborted => Outcome::Aborted,
            Err(_) => Outcome::Failed,
        };
        record.exit_code = Some(match result {
            Ok(()) => exit::OK,
            Err(e) => exit::kind_of(e).code(),
        });
        record.error = result.as_ref().err().map(|e| format!("{e:#}"));
    }
    ctx.journal.save()
}

fn banner(ctx: &Ctx, label: &str) {
    let s = &ctx.journal.state;
    crate::say!(
        "==> {label}  (lab {}, run {}, {} -> {})",
        s.lab,
        s.run_id,
        s.from_release,
        s.to_release
    );
}

fn outcome_banner(label: &str, result: &anyhow::Result<()>, started: Instant) {
    let secs = started.elapsed().as_secs_f64();
    match result {
        Ok(()) => crate::say!("<== {label} passed in {secs:.1}s"),
        Err(e) if exit::kind_of(e) == exit::Kind::Aborted => crate::say!(
            "<== {label} ABORTED in {secs:.1}s (exit {}): {e:#}",
            exit::ABORTED
        ),
        Err(e) => crate::say!(
            "<== {label} FAILED in {secs:.1}s (exit {}): {e:#}",
            exit::kind_of(e).code()
        ),
    }
}
