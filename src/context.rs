//! What every step works with: the lab file, the workspace, the provider and the journal.

use std::path::PathBuf;

use anyhow::Context;

use crate::cli::Global;
use crate::config::Config;
use crate::exit::{Kind, fail};
use crate::journal::{self, Journal, State};
use crate::provider::{self, Provider};

pub struct Ctx {
    pub config: Config,
    pub workspace: PathBuf,
    pub provider: Box<dyn Provider>,
    pub journal: Journal,
}

/// Loads the lab file (a usage error when it is bad) without touching the workspace.
pub fn load_config(global: &Global) -> anyhow::Result<Config> {
    Config::load(&global.config)
}

impl Ctx {
    /// Opens the workspace for a step: locks it, loads or starts the journal, applies the
    /// release overrides. With `new_run`, a finished journal (cleaned up, nothing live) is
    /// archived and a fresh one started; a journal with live resources of another run is
    /// refused.
    pub fn open(global: &Global, new_run: bool) -> anyhow::Result<Ctx> {
        let config = load_config(global)?;
        let workspace = std::path::absolute(global.workspace())?;
        let fresh = || {
            let from = global
                .from_release
                .as_deref()
                .unwrap_or(&config.lab.from_release);
            let to = global
                .to_release
                .as_deref()
                .unwrap_or(&config.lab.to_release);
            State::new(&config.lab.name, from, to)
        };
        let mut journal = Journal::open(&workspace, fresh)?;
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
        if let Some(from) = &global.from_release {
            journal.state.from_release = from.clone();
        }
        if let Some(to) = &global.to_release {
            journal.state.to_release = to.clone();
        }
        journal.save()?;
        let provider = provider::from_config(&config, &workspace);
        Ok(Ctx {
            config,
            workspace,
            provider,
            journal,
        })
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

/// A journal whose run was cleaned up and holds nothing live.
fn finished(state: &State) -> bool {
    let cleaned = state.steps.last().is_some_and(|s| s.step == "cleanup");
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
