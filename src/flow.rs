//! The pipeline's steps, the order that makes a complete flow, and what of it is missing
//! from a journal. Depends on the journal only: commands, steps, teardown and reports all
//! read it.

use crate::workspace::journal::{Outcome, State};

/// Which side of the upgrade a verification is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Phase {
    Before,
    After,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Before => "before",
            Phase::After => "after",
        }
    }
}

/// A step of the pipeline, as recorded in the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Provision,
    Deploy,
    Verify(Phase),
    Upgrade,
    Report,
    Cleanup,
}

/// The steps that make a complete flow, in order (report and cleanup always follow).
pub const FLOW: [Step; 5] = [
    Step::Provision,
    Step::Deploy,
    Step::Verify(Phase::Before),
    Step::Upgrade,
    Step::Verify(Phase::After),
];

impl Step {
    /// The step's name in the journal and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Step::Provision => "provision",
            Step::Deploy => "deploy",
            Step::Verify(_) => "verify",
            Step::Upgrade => "upgrade",
            Step::Report => "report",
            Step::Cleanup => "cleanup",
        }
    }

    pub fn phase(self) -> Option<&'static str> {
        match self {
            Step::Verify(phase) => Some(phase.as_str()),
            _ => None,
        }
    }

    /// `verify:before`, `deploy`, …
    pub fn label(self) -> String {
        match self.phase() {
            Some(phase) => format!("{}:{phase}", self.name()),
            None => self.name().to_string(),
        }
    }

    /// Whether a journal's step record is of this step.
    pub fn is(self, step: &str, phase: Option<&str>) -> bool {
        self.name() == step && self.phase() == phase
    }
}

/// Steps of the flow that did not run or did not pass (empty: the flow was complete).
/// A report or cleanup that started and did not finish (killed, failed) counts too: the
/// evidence was not published or the lab not cleared; one still running does not.
pub fn incomplete(state: &State) -> Vec<String> {
    let flow = FLOW.iter().filter_map(|step| {
        let last = state.last_step(step.name(), step.phase());
        match last.map(|s| s.outcome) {
            Some(Outcome::Passed) => None,
            None => Some(format!("{} never ran", step.label())),
            Some(outcome) => Some(unfinished(*step, outcome)),
        }
    });
    let tail = [Step::Report, Step::Cleanup]
        .into_iter()
        .filter_map(|step| {
            let last = state.last_step(step.name(), None)?;
            let running =
                last.outcome == Outcome::Running && last.owner.is_some_and(|o| o.is_alive());
            (last.outcome != Outcome::Passed && !running).then(|| unfinished(step, last.outcome))
        });
    flow.chain(tail).collect()
}

fn unfinished(step: Step, outcome: Outcome) -> String {
    match outcome {
        Outcome::Failed => format!("{} failed", step.label()),
        Outcome::Aborted => format!("{} was aborted", step.label()),
        _ => format!("{} was interrupted", step.label()),
    }
}

/// Where `run` picks up a run that stopped before its end: the number of leading flow
/// steps whose latest record passed (0 once a cleanup ran: the lab may be gone).
pub fn resume_point(state: &State) -> usize {
    if state
        .steps
        .iter()
        .any(|s| Step::Cleanup.is(&s.step, s.phase.as_deref()))
    {
        return 0;
    }
    FLOW.iter()
        .take_while(|step| {
            let last = state.last_step(step.name(), step.phase());
            last.is_some_and(|s| s.outcome == Outcome::Passed)
        })
        .count()
}

/// Whether the journal's latest step record is a cleanup that passed.
pub fn cleaned_up(state: &State) -> bool {
    state
        .steps
        .last()
        .is_some_and(|s| Step::Cleanup.is(&s.step, None) && s.outcome == Outcome::Passed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workspace::journal::StepRecord;

    fn record(step: Step, outcome: Outcome) -> StepRecord {
        StepRecord {
            step: step.name().into(),
            phase: step.phase().map(str::to_string),
            started: chrono::Utc::now(),
            ended: None,
            outcome,
            exit_code: None,
            error: None,
            attempts: Vec::new(),
            owner: None,
        }
    }

    #[test]
    fn a_fresh_journal_is_incomplete_step_by_step() {
        let state = State::new("t", "A", "B");
        let missing = incomplete(&state);
        assert_eq!(missing.len(), 5);
        assert_eq!(missing[2], "verify:before never ran");
    }

    #[test]
    fn the_latest_record_of_each_step_decides() {
        let mut state = State::new("t", "A", "B");
        for step in FLOW {
            state.steps.push(record(step, Outcome::Passed));
        }
        assert!(incomplete(&state).is_empty());
        state.steps.push(record(Step::Upgrade, Outcome::Failed));
        state
            .steps
            .push(record(Step::Verify(Phase::After), Outcome::Running));
        assert_eq!(
            incomplete(&state),
            ["upgrade failed", "verify:after was interrupted"]
        );
        assert!(!cleaned_up(&state));
        assert_eq!(resume_point(&state), 3, "upgrade failed last: resume there");
        state.steps.push(record(Step::Cleanup, Outcome::Passed));
        assert!(cleaned_up(&state));
    }
}
