//! The pipeline steps: each runs its actions with retries and the seed's teardown rules,
//! and leaves a step record in the journal whatever happens.

use std::time::Instant;

use anyhow::Context;
use chrono::Utc;
use serde_json::{Map, Value, json};

use crate::action::{self, Vars};
use crate::availability;
use crate::cleanup;
use crate::cli::Phase;
use crate::config::{Action, Teardown, UpgradeMode};
use crate::context::Ctx;
use crate::exit::{self, Kind, fail};
use crate::journal::{Outcome, StepRecord};
use crate::persistent;
use crate::report;
use crate::smoke;

/// A step of the pipeline, as recorded in the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Provision,
    Deploy,
    Verify(Phase),
    Upgrade,
}

impl Step {
    pub fn name(self) -> &'static str {
        match self {
            Step::Provision => "provision",
            Step::Deploy => "deploy",
            Step::Verify(_) => "verify",
            Step::Upgrade => "upgrade",
        }
    }
    pub fn phase(self) -> Option<&'static str> {
        match self {
            Step::Verify(phase) => Some(phase.as_str()),
            _ => None,
        }
    }
    pub fn label(self) -> String {
        match self.phase() {
            Some(phase) => format!("{}:{phase}", self.name()),
            None => self.name().to_string(),
        }
    }
}

/// The steps that make a complete flow, in order.
pub const FLOW: [Step; 5] = [
    Step::Provision,
    Step::Deploy,
    Step::Verify(Phase::Before),
    Step::Upgrade,
    Step::Verify(Phase::After),
];

/// Runs one step under a journal record and a banner.
pub fn run(ctx: &mut Ctx, step: Step) -> anyhow::Result<()> {
    banner(ctx, &step.label());
    begin(ctx, step.name(), step.phase())?;
    let started = Instant::now();
    let result = body(ctx, step);
    let _ = ctx.provider.adopt(&mut ctx.journal);
    end(ctx, &result)?;
    if let Err(err) = report::write_all(&ctx.journal.state, &ctx.workspace) {
        println!("!!! could not write the reports: {err:#}");
    }
    outcome_banner(&step.label(), &result, started);
    result
}

fn body(ctx: &mut Ctx, step: Step) -> anyhow::Result<()> {
    match step {
        Step::Provision => provision(ctx),
        Step::Deploy => deploy(ctx),
        Step::Verify(phase) => verify(ctx, phase),
        Step::Upgrade => upgrade(ctx),
    }
}

fn provision(ctx: &mut Ctx) -> anyhow::Result<()> {
    if let Err(err) = ctx.provider.acquire(&mut ctx.journal) {
        // The seed's rule: a failure while getting the host deletes the host.
        cleanup::teardown(ctx, Teardown::Host)?;
        return Err(err.context("failed to acquire the host (its resources were destroyed)"));
    }
    let release = ctx.journal.state.from_release.clone();
    let config = ctx.config.provision.clone();
    run_actions(
        ctx,
        "provision",
        &config.host,
        base_vars(ctx, "provision", &release),
    )?;
    build(ctx)?;
    run_actions(
        ctx,
        "provision",
        &config.lab,
        base_vars(ctx, "provision", &release),
    )?;
    run_actions(
        ctx,
        "provision",
        &config.vms,
        base_vars(ctx, "provision", &release),
    )
}

fn build(ctx: &mut Ctx) -> anyhow::Result<()> {
    if let Err(err) = ctx.provider.build(&mut ctx.journal) {
        cleanup::teardown(ctx, Teardown::Virtual)?;
        return Err(err.context("failed to build the lab (its virtual resources were destroyed)"));
    }
    Ok(())
}

fn deploy(ctx: &mut Ctx) -> anyhow::Result<()> {
    ctx.require_lab()?;
    let release = ctx.journal.state.from_release.clone();
    let actions = ctx.config.deploy.actions.clone();
    run_actions(ctx, "deploy", &actions, base_vars(ctx, "deploy", &release))
}

/// Verification: the lab's actions, the persistent resources, the smoke suite. Every part
/// runs and leaves its evidence; their check failures are reported together.
fn verify(ctx: &mut Ctx, phase: Phase) -> anyhow::Result<()> {
    ctx.require_lab()?;
    let expected = match phase {
        Phase::Before => ctx.journal.state.from_release.clone(),
        Phase::After => ctx.journal.state.to_release.clone(),
    };
    let mut vars = base_vars(ctx, "verify", &expected);
    vars.insert("rollci_phase".into(), json!(phase.as_str()));
    vars.insert("rollci_expected_release".into(), json!(expected));
    let label = format!("verify:{}", phase.as_str());
    let actions = ctx.config.verify.actions.clone();
    let mut problems = Vec::new();
    if let Err(err) = run_actions(ctx, &label, &actions, vars.clone()) {
        match reclassify_as_check(err) {
            e if exit::kind_of(&e) == Kind::Check => problems.push(format!("{e:#}")),
            e => return Err(e),
        }
    }
    problems.extend(match phase {
        Phase::Before => persistent::create_all(ctx)?,
        Phase::After => persistent::verify_all(ctx)?,
    });
    if let Some(smoke) = ctx.config.verify.smoke.clone() {
        problems.extend(smoke::run(ctx, &smoke, phase, &vars)?);
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(fail(Kind::Check, problems.join("; ")))
    }
}

fn upgrade(ctx: &mut Ctx) -> anyhow::Result<()> {
    ctx.require_lab()?;
    let release = ctx.journal.state.to_release.clone();
    let upgrade = ctx.config.upgrade.clone();
    let vars = base_vars(ctx, "upgrade", &release);
    let actions: Vec<Action> = match upgrade.mode {
        UpgradeMode::AllAtOnce => vec![
            upgrade
                .action
                .context("all-at-once upgrade without an action")?,
        ],
        UpgradeMode::Rolling => upgrade.components.clone(),
    };
    let mut watch = availability::Watch::start(ctx)?;
    let mut result = Ok(());
    for action in &actions {
        let mut vars = vars.clone();
        if upgrade.mode == UpgradeMode::Rolling {
            vars.insert("rollci_component".into(), json!(action.name));
        }
        watch.begin(&action.name);
        result = run_actions(ctx, "upgrade", std::slice::from_ref(action), vars);
        watch.end();
        if result.is_err() {
            break;
        }
    }
    // The evidence is written whatever happened; an infrastructure failure outranks the
    // downtime verdict.
    let verdict = watch.finish(ctx);
    result.and(verdict)
}

/// A failed verification is the system under test failing a check, unless the tooling
/// itself broke (an unreachable host, a missing tool).
fn reclassify_as_check(err: anyhow::Error) -> anyhow::Error {
    if exit::kind_of(&err) == Kind::Infra && action::is_action_failure(&err) {
        let message = format!("{err:#}");
        fail(Kind::Check, message)
    } else {
        err
    }
}

/// The variables every action of a step gets.
fn base_vars(ctx: &Ctx, step: &str, release: &str) -> Vars {
    let state = &ctx.journal.state;
    let mut vars: Map<String, Value> = ctx.provider.vars();
    vars.insert("rollci_run_id".into(), json!(state.run_id));
    vars.insert("rollci_step".into(), json!(step));
    vars.insert("rollci_release".into(), json!(release));
    vars.insert("rollci_from_release".into(), json!(state.from_release));
    vars.insert("rollci_to_release".into(), json!(state.to_release));
    vars
}

fn run_actions(ctx: &mut Ctx, label: &str, actions: &[Action], vars: Vars) -> anyhow::Result<()> {
    for a in actions {
        action::run(ctx, label, a, &vars)?;
    }
    Ok(())
}

/// Opens a step record (saved, so a killed step shows as `running`).
pub fn begin(ctx: &mut Ctx, step: &str, phase: Option<&str>) -> anyhow::Result<()> {
    ctx.journal.state.steps.push(StepRecord {
        step: step.to_string(),
        phase: phase.map(str::to_string),
        started: Utc::now(),
        ended: None,
        outcome: Outcome::Running,
        exit_code: None,
        error: None,
        attempts: Vec::new(),
    });
    ctx.journal.save()
}

/// Closes the open step record with the result.
pub fn end(ctx: &mut Ctx, result: &anyhow::Result<()>) -> anyhow::Result<()> {
    if let Some(record) = ctx.journal.state.steps.last_mut() {
        record.ended = Some(Utc::now());
        record.outcome = if result.is_ok() {
            Outcome::Passed
        } else {
            Outcome::Failed
        };
        record.exit_code = Some(match result {
            Ok(()) => exit::OK,
            Err(e) => exit::kind_of(e).code(),
        });
        record.error = result.as_ref().err().map(|e| format!("{e:#}"));
    }
    ctx.journal.save()
}

pub fn banner(ctx: &Ctx, label: &str) {
    let s = &ctx.journal.state;
    println!(
        "==> {label}  (lab {}, run {}, {} -> {})",
        s.lab, s.run_id, s.from_release, s.to_release
    );
}

pub fn outcome_banner(label: &str, result: &anyhow::Result<()>, started: Instant) {
    let secs = started.elapsed().as_secs_f64();
    match result {
        Ok(()) => println!("<== {label} passed in {secs:.1}s"),
        Err(e) => println!(
            "<== {label} FAILED in {secs:.1}s (exit {}): {e:#}",
            exit::kind_of(e).code()
        ),
    }
}
