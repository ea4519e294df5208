//! Keeping the lab's logs before teardown removes the lab, the only record of what its
//! services said: the provider's own (the local lab's files) and, when the lab file has
//! `[logs]`, those folders of every host in the inventory, fetched by Ansible (so it works
//! the same on every provider whose hosts Ansible reaches).

use std::path::Path;

use anyhow::Context;
use serde_json::{Value, json};

use crate::attempt;
use crate::config::{Action, LogsConfig, Teardown};
use crate::context::Ctx;
use crate::exec::runner::Ended;
use crate::provider::KeptLogs;
use crate::workspace::journal::Outcome;

/// The playbook that fetches `[logs]`, kept in `templates/` and embedded here.
const PLAYBOOK: &str = include_str!("../templates/keep-logs.yml");

/// Keeps what can be kept into the run's logs folder (see [`folder`]). Failing to keep logs
/// is said and does not stop the teardown: removing the lab matters more.
pub fn keep(ctx: &mut Ctx) {
    let into = ctx.log_dir().join(folder(&ctx.journal.state));
    let kept = ctx.provider.keep_logs(&ctx.journal, &into);
    say("the lab", kept, &into, false);
    let Some(logs) = ctx.config.logs.clone() else {
        return;
    };
    if ctx.journal.state.hosts.is_empty() {
        return;
    }
    if !ctx.provider.reaches_hosts() {
        crate::say!(
            "--- `[logs]` not fetched: the lab's hosts are not reached (`reach = \"none\"`)"
        );
        return;
    }
    let fetched = fetch(ctx, &logs, &into);
    say("the hosts' `[logs]`", fetched, &into, true);
}

/// `lab` at cleanup; for the teardown after a failure within a step,
/// `lab-after-<step>-<action>-<attempt>` (a failed attempt) or `lab-after-<step>` (the host
/// or the lab could not be made), so that the logs of the lab that failed are not
/// overwritten by those of the lab rebuilt for the next attempt.
fn folder(state: &crate::workspace::journal::State) -> String {
    let Some(step) = state.steps.last().filter(|s| s.step != "cleanup") else {
        return "lab".into();
    };
    let step_name = step.label().replace(':', "-");
    match step
        .attempts
        .last()
        .filter(|a| a.outcome == Outcome::Failed)
    {
        Some(a) => format!("lab-after-{step_name}-{}-{}", a.action, a.attempt),
        None => format!("lab-after-{step_name}"),
    }
}

/// Says what was kept; nothing kept is said only of what the lab file asked for.
fn say(whose: &str, kept: anyhow::Result<KeptLogs>, into: &Path, asked: bool) {
    match kept {
        Ok(kept) if kept.files > 0 => crate::say!(
            "--- kept {} log file(s) of {whose} ({} KiB){} in {}",
            kept.files,
            kept.bytes.div_ceil(1024),
            match kept.left_out {
                0 => String::new(),
                n => format!(", {n} left out past the limits"),
            },
            into.display()
        ),
        Ok(_) if asked => crate::say!("--- no log file of {whose} to keep"),
        Ok(_) => {}
        Err(err) => crate::say!("!!! the logs of {whose} were not all kept: {err:#}"),
    }
}

/// Runs the embedded playbook against the inventory, journaled as an attempt of the open
/// step (so a rollci killed meanwhile leaves its process group findable), and counts what
/// arrived under `into/<host>/`.
fn fetch(ctx: &mut Ctx, logs: &LogsConfig, into: &Path) -> anyhow::Result<KeptLogs> {
    let playbook = ctx.workspace.join("ansible").join("keep-logs.yml");
    std::fs::create_dir_all(into)
        .with_context(|| format!("failed to create `{}`", into.display()))?;
    std::fs::create_dir_all(playbook.parent().unwrap_or(into))?;
    std::fs::write(&playbook, PLAYBOOK)
        .with_context(|| format!("failed to write `{}`", playbook.display()))?;
    let action = Action {
        name: "keep-logs".into(),
        playbook: Some(std::path::absolute(&playbook)?),
        command: None,
        extra_vars: Default::default(),
        retries: 0,
        retry_delay: None,
        timeout: Some(logs.timeout),
        on_failure: Teardown::None,
    };
    let mut vars = ctx.provider.vars();
    vars.insert("rollci_run_id".into(), json!(ctx.journal.state.run_id));
    vars.extend(variables(logs, &std::path::absolute(into)?));
    let step = ctx.journal.state.steps.last().map(|s| s.step.clone());
    let label = format!("{}/keep-logs", step.as_deref().unwrap_or("teardown"));
    let log = ctx.attempt_log(&label);
    let inv = attempt::invocation(ctx, &action, &vars, label, log.clone())?;
    // Journaled as `[logs]`, a name no action of the lab can have (an upgrade's resume
    // looks up its components' attempts by name).
    let ended = attempt::attempt_of(ctx, "[logs]", 1, &inv, Ended::success)?;
    let kept = count(into, &ctx.journal.state);
    if !ended.success() {
        let meaning = match ended {
            Ended::Exited(code) => format!(" ({})", crate::exec::ansible::meaning(code)),
            _ => String::new(),
        };
        anyhow::bail!(
            "{}{meaning}; {} file(s) kept (log: {})",
            ended.describe(logs.timeout),
            kept.files,
            log.display()
        );
    }
    Ok(kept)
}

/// The playbook's variables (see `templates/keep-logs.yml`).
fn variables(logs: &LogsConfig, into: &Path) -> serde_json::Map<String, Value> {
    let mut vars = serde_json::Map::new();
    vars.insert("rollci_log_folders".into(), json!(logs.folders));
    vars.insert("rollci_log_patterns".into(), json!(logs.patterns));
    vars.insert(
        "rollci_log_max_bytes".into(),
        json!(logs.max_file_mib.saturating_mul(1024 * 1024)),
    );
    vars.insert("rollci_log_max_files".into(), json!(logs.max_files));
    vars.insert("rollci_logs_dir".into(), json!(into));
    vars
}

/// The files now under `into/<host>/` for the lab's hosts.
fn count(into: &Path, state: &crate::workspace::journal::State) -> KeptLogs {
    let mut kept = KeptLogs::default();
    for host in &state.hosts {
        let files = walkdir::WalkDir::new(into.join(&host.name))
            .into_iter()
            .flatten()
            .filter(|e| e.file_type().is_file());
        for file in files {
            kept.files += 1;
            kept.bytes += file.metadata().map(|m| m.len()).unwrap_or(0);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workspace::journal::{Attempt, State, StepRecord};

    fn step(step: &str, phase: Option<&str>, attempts: &[(&str, u32, Outcome)]) -> StepRecord {
        StepRecord {
            step: step.into(),
            phase: phase.map(str::to_string),
            started: chrono::Utc::now(),
            ended: None,
            outcome: Outcome::Running,
            exit_code: None,
            error: None,
            attempts: attempts
                .iter()
                .map(|(action, attempt, outcome)| Attempt {
                    action: action.to_string(),
                    attempt: *attempt,
                    started: chrono::Utc::now(),
                    ended: None,
                    outcome: *outcome,
                    exit_code: None,
                    log: "x.log".into(),
                    group: None,
                })
                .collect(),
            owner: None,
        }
    }

    #[test]
    fn a_failed_attempts_teardown_keeps_apart_and_cleanup_keeps_in_lab() {
        let mut state = State::new("t", "A", "B");
        assert_eq!(folder(&state), "lab");
        let failed = [("smoke", 1, Outcome::Failed), ("smoke", 2, Outcome::Failed)];
        state.steps.push(step("verify", Some("before"), &failed));
        assert_eq!(folder(&state), "lab-after-verify-before-smoke-2");
        state
            .steps
            .push(step("provision", None, &[("host", 1, Outcome::Passed)]));
        assert_eq!(
            folder(&state),
            "lab-after-provision",
            "no attempt failed: the build did"
        );
        state.steps.push(step("cleanup", None, &[]));
        assert_eq!(folder(&state), "lab");
    }
}
