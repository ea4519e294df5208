//! What every step works with: the lab file, the workspace, the provider and the journal.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::config::Config;
use crate::exec::runner::{self, Executor};
use crate::exit::{Kind, fail};
use crate::procs;
use crate::provider::{self, Provider};
use crate::workspace::journal::{self, Journal, Outcome, State};

/// What a step works with. Built by [`Ctx::open`]; tests build one with [`Ctx::new`] around
/// a fake provider or executor.
pub struct Ctx {
    pub config: Config,
    pub workspace: PathBuf,
    pub provider: Box<dyn Provider>,
    pub executor: Box<dyn Executor>,
    pub journal: Journal,
    /// `upgrade --restart`: redo the components that passed in an earlier attempt.
    pub restart_upgrade: bool,
    /// `provision --acquire-only`: stop once the host is acquired.
    pub acquire_only: bool,
}

/// Releases given on the command line or by Jenkins, overriding the lab file's.
#[derive(Debug, Clone, Default)]
pub struct Releases {
    pub from: Option<String>,
    pub to: Option<String>,
}

impl Ctx {
    /// Opens the workspace for a step: builds the lab's provider (a usage error touches
    /// nothing), locks the workspace, loads or starts the journal, applies the release
    /// overrides. With `new_run`, a finished journal (cleaned up, nothing live) is archived
    /// and a fresh one started.
    pub fn open(
        config: Config,
        workspace: &Path,
        releases: &Releases,
        new_run: bool,
    ) -> anyhow::Result<Ctx> {
        let workspace = std::path::absolute(workspace)?;
        let provider = provider::from_config(&config, &workspace)?;
        let fresh = || {
            let from = releases.from.as_deref().unwrap_or(&config.lab.from_release);
            let to = releases.to.as_deref().unwrap_or(&config.lab.to_release);
            State::new(&config.lab.name, from, to)
        };
        let mut journal = Journal::open(&workspace, fresh)?;
        recover(&mut journal)?;
        if new_run && finished(&journal.state) {
            archive(&workspace, &journal.state)?;
            journal.state = fresh();
        }
        if journal.state.lab != config.lab.name {
            return Err(fail(
                Kind::Usage,
                format!(
                    "workspace `{}` belongs to lab `{}`, not `{}`: use another --workspace",
                    workspace.display(),
                    journal.state.lab,
                    config.lab.name
                ),
            ));
        }
        if let Some(from) = &releases.from {
            journal.state.from_release = from.clone();
        }
        if let Some(to) = &releases.to {
            journal.state.to_release = to.clone();
        }
        journal.save()?;
        crate::route::set(provider.socks(&journal));
        Ok(Ctx::new(config, workspace, journal, provider))
    }

    /// A context around an open journal and a provider; tools run for real until
    /// [`Ctx::executor`] is replaced.
    pub fn new(
        config: Config,
        workspace: PathBuf,
        journal: Journal,
        provider: Box<dyn Provider>,
    ) -> Ctx {
        Ctx {
            config,
            workspace,
            provider,
            executor: Box::new(runner::System),
            journal,
            restart_upgrade: false,
            acquire_only: false,
        }
    }

    /// The log file of an attempt (`label`: `step/action#attempt`) of the open step record.
    pub fn attempt_log(&self, label: &str) -> PathBuf {
        runner::attempt_log(&self.log_dir(), self.journal.state.steps.len(), label)
    }

    /// Where this run's logs go.
    pub fn log_dir(&self) -> PathBuf {
        self.workspace.join("logs").join(&self.journal.state.run_id)
    }

    /// Fails with a usage error unless a lab has been provisioned.
    pub fn require_lab(&self) -> anyhow::Result<()> {
        let has_host = self
            .journal
            .state
            .live()
            .any(|r| r.layer == journal::Layer::Host);
        if self.journal.state.hosts.is_empty() || !has_host {
            return Err(fail(
                Kind::Usage,
                "no lab in this workspace: run `rollci provision` first",
            ));
        }
        Ok(())
    }
}

/// How long a tool left running by a killed rollci gets to end on SIGTERM.
const ORPHAN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// A journal opened after its rollci died mid-step (we hold the lock, so whatever is
/// still `running` has no rollci): stop what its tools left running, then mark the records
/// `interrupted`, before any step can overlap with them.
fn recover(journal: &mut Journal) -> anyhow::Result<()> {
    let run_id = journal.state.run_id.clone();
    let mut changed = false;
    for step in journal.state.steps.iter_mut() {
        if step.outcome != Outcome::Running {
            continue;
        }
        for attempt in step
            .attempts
            .iter()
            .filter(|a| a.outcome == Outcome::Running)
        {
            let Some(group) = attempt.group else { continue };
            let left = procs::left_in_group(group.pid, &run_id);
            let stopped = procs::stop_all(&left, ORPHAN_GRACE);
            if stopped > 0 {
                crate::say!(
                    "--- stopped {stopped} process(es) of `{}` (group {}) left running by a rollci that died",
                    attempt.action,
                    group.pid
                );
            }
        }
        crate::say!(
            "--- {} was interrupted (its rollci died): recorded as such",
            step.label()
        );
        step.interrupt();
        changed = true;
    }
    if changed {
        journal.save()?;
    }
    Ok(())
}

/// A journal whose run was cleaned up and holds nothing live.
fn finished(state: &State) -> bool {
    let cleaned = state
        .steps
        .last()
        .is_some_and(|s| crate::flow::Step::Cleanup.is(&s.step, None));
    cleaned && state.live().next().is_none()
}

/// Moves a finished run's journal, evidence and reports to `runs/<run id>/`, so the next
/// run's reports never show the previous run's evidence.
fn archive(workspace: &std::path::Path, state: &State) -> anyhow::Result<()> {
    let dir = workspace.join("runs").join(&state.run_id);
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("failed to create `{}`", dir.display()))?;
    std::fs::write(dir.join("state.json"), serde_json::to_vec_pretty(state)?)?;
    for part in ["evidence", "reports"] {
        let from = workspace.join(part);
        if from.exists() {
            std::fs::rename(&from, dir.join(part))
                .with_context(|| format!("failed to archive `{}`", from.display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finished_run_is_archived_with_its_evidence() {
        let ws = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(ws.path().join("evidence")).unwrap();
        std::fs::write(ws.path().join("evidence/availability.json"), "{}").unwrap();
        let state = State::new("t", "A", "B");
        archive(ws.path(), &state).unwrap();
        let dir = ws.path().join("runs").join(&state.run_id);
        assert!(dir.join("state.json").exists());
        assert!(dir.join("evidence/availability.json").exists());
        assert!(
            !ws.path().join("evidence").exists(),
            "the new run starts without evidence"
        );
    }
}
