//! The state journal (`<workspace>/state.json`): hosts, resources and step records.
//!
//! Versioned, rewritten atomically (temp file, fsync, rename) after every change, and
//! guarded by an exclusive lock on `<workspace>/state.lock` held for a whole command.
//! A resource is recorded as `creating` before the call that creates it.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::exit::{Kind, fail};
use crate::workspace::generations;

/// Version of the file format; bumped on incompatible changes.
pub const VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct State {
    pub version: u32,
    pub run_id: String,
    pub lab: String,
    pub from_release: String,
    pub to_release: String,
    pub created: DateTime<Utc>,
    #[serde(default)]
    pub hosts: Vec<Host>,
    #[serde(default)]
    pub resources: Vec<Resource>,
    #[serde(default)]
    pub steps: Vec<StepRecord>,
}

/// A machine of the lab and how to reach it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Host {
    pub name: String,
    pub address: String,
    pub port: u16,
    /// Ansible groups it belongs to.
    pub groups: Vec<String>,
    /// `local` or `ssh`.
    pub connection: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Named ports besides `port` (a lab with several services per host): `{lb:keystone}`
    /// in URLs, `rollci_ports` in the inventory.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ports: BTreeMap<String, u16>,
}

/// The layers of a lab, in creation order; cleanup destroys the higher ones first.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum Layer {
    Host,
    LabState,
    Network,
    Vm,
    Process,
    /// Data created through the system's API (persistent resources): removed first, while
    /// the API still answers.
    Data,
}

impl Layer {
    /// Whether a teardown of the virtual resources removes this layer.
    pub fn is_virtual(self) -> bool {
        self > Layer::Host
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Creating,
    Created,
    Destroyed,
}

/// Something that exists (or may exist) because of this run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Resource {
    pub id: String,
    /// Who made it and destroys it: a provider's kind (`local`) or `persistent`. Journals
    /// written before owners were recorded have none: the lab's provider owns those, but
    /// for persistent resources (see `crate::checks::persistent::Owner::owns`).
    #[serde(default)]
    pub owner: String,
    pub kind: String,
    pub name: String,
    pub layer: Layer,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    pub status: Status,
    /// Provider-specific identity (a path; a pid and its start time; a cloud id).
    pub data: serde_json::Value,
    pub created: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destroyed: Option<DateTime<Utc>>,
    /// Last error met while destroying it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Running,
    Passed,
    Failed,
    /// Stopped by a signal (Jenkins' Abort, Ctrl-C) and closed by rollci itself.
    Aborted,
    /// Its rollci died (`kill -9`, a lost agent) while it was running.
    Interrupted,
}

/// A process by pid and start time (a recycled pid never matches).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProcessId {
    pub pid: u32,
    pub start_time: u64,
}

impl ProcessId {
    /// This rollci.
    pub fn me() -> Option<ProcessId> {
        let pid = std::process::id();
        Some(ProcessId {
            pid,
            start_time: crate::procs::start_time(pid)?,
        })
    }

    pub fn is_alive(self) -> bool {
        crate::procs::is_running(self.pid, self.start_time)
    }
}

/// One run of one step (`verify` has a phase).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StepRecord {
    pub step: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    pub started: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended: Option<DateTime<Utc>>,
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default)]
    pub attempts: Vec<Attempt>,
    /// The rollci that ran it: a `running` record whose owner is gone was interrupted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<ProcessId>,
}

/// One attempt of one action inside a step.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Attempt {
    pub action: String,
    pub attempt: u32,
    pub started: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended: Option<DateTime<Utc>>,
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    pub log: PathBuf,
    /// The tool's process group leader while it runs (its group is stopped if a killed
    /// rollci left it running).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<ProcessId>,
}

impl StepRecord {
    /// Marks a running record, and its running attempts, as interrupted.
    pub fn interrupt(&mut self) {
        self.outcome = Outcome::Interrupted;
        for attempt in &mut self.attempts {
            if attempt.outcome == Outcome::Running {
                attempt.outcome = Outcome::Interrupted;
            }
        }
    }

    /// Wall time of the step in milliseconds, once it ended.
    pub fn duration_ms(&self) -> Option<i64> {
        self.ended
            .map(|end| (end - self.started).num_milliseconds())
    }
    /// `verify:before`, `deploy`, …
    pub fn label(&self) -> String {
        match &self.phase {
            Some(phase) => format!("{}:{phase}", self.step),
            None => self.step.clone(),
        }
    }
}

impl State {
    pub fn new(lab: &str, from_release: &str, to_release: &str) -> State {
        let now = Utc::now();
        State {
            version: VERSION,
            run_id: format!("{}-{}", now.format("%Y%m%dT%H%M%S"), std::process::id()),
            lab: lab.to_string(),
            from_release: from_release.to_string(),
            to_release: to_release.to_string(),
            created: now,
            hosts: Vec::new(),
            resources: Vec::new(),
            steps: Vec::new(),
        }
    }

    pub fn resource(&self, id: &str) -> Option<&Resource> {
        self.resources.iter().find(|r| r.id == id)
    }

    pub fn resource_mut(&mut self, id: &str) -> Option<&mut Resource> {
        self.resources.iter_mut().find(|r| r.id == id)
    }

    /// Resources not yet destroyed.
    pub fn live(&self) -> impl Iterator<Item = &Resource> {
        self.resources
            .iter()
            .filter(|r| r.status != Status::Destroyed)
    }

    /// Running records whose rollci is gone, shown as `interrupted` (for readers that do not
    /// hold the lock, such as `status`).
    pub fn settled(mut self) -> State {
        for step in &mut self.steps {
            let dead = step.owner.is_none_or(|o| !o.is_alive());
            if step.outcome == Outcome::Running && dead {
                step.interrupt();
            }
        }
        self
    }

    /// The latest record of a step (and phase).
    pub fn last_step(&self, step: &str, phase: Option<&str>) -> Option<&StepRecord> {
        self.steps
            .iter()
            .rev()
            .find(|s| s.step == step && s.phase.as_deref() == phase)
    }
}

/// A journal open for writing: the state plus the lock that makes it ours.
pub struct Journal {
    pub state: State,
    path: PathBuf,
    _lock: File,
}

/// Path of the state file of a workspace.
pub fn state_path(workspace: &Path) -> PathBuf {
    workspace.join("state.json")
}

/// Reads a workspace's state without locking (for `status`, `inventory`, `report`).
pub fn read(workspace: &Path) -> anyhow::Result<Option<State>> {
    let path = state_path(workspace);
    let text = match std::fs::read(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("failed to read `{}`", path.display())),
    };
    let state: State =
        serde_json::from_slice(&text).map_err(|e| generations::unreadable(&path, &e, summary))?;
    if state.version != VERSION {
        return Err(fail(
            Kind::Usage,
            format!(
                "state journal `{}` has version {}, this rollci reads version {VERSION}",
                path.display(),
                state.version
            ),
        ));
    }
    Ok(Some(state))
}

/// What a readable generation of the journal holds, for the recovery hint.
fn summary(text: &str) -> Option<String> {
    let state: State = serde_json::from_str(text).ok()?;
    Some(format!(
        "run {}, {} resources, {} not destroyed",
        state.run_id,
        state.resources.len(),
        state.live().count()
    ))
}

impl Journal {
    /// Locks the workspace (failing at once if another rollci holds it) and loads its state,
    /// or starts a new one with `fresh` when there is none.
    pub fn open(workspace: &Path, fresh: impl FnOnce() -> State) -> anyhow::Result<Journal> {
        std::fs::create_dir_all(workspace)
            .with_context(|| format!("failed to create workspace `{}`", workspace.display()))?;
        let lock = lock(workspace)?;
        let state = match read(workspace)? {
            Some(state) => state,
            None => fresh(),
        };
        let journal = Journal {
            state,
            path: state_path(workspace),
            _lock: lock,
        };
        journal.save()?;
        Ok(journal)
    }

    /// Writes the state atomically: a reader sees the old file or the new one, never half.
    pub fn save(&self) -> anyhow::Result<()> {
        let text = serde_json::to_vec_pretty(&self.state).context("failed to encode state")?;
        generations::keep_previous(&self.path)
            .and_then(|()| crate::workspace::atomic::write(&self.path, &text))
            .map_err(|e| generations::not_saved(&self.path, e))
    }

    /// Records a resource as `creating` (and saves) before the caller creates it.
    pub fn begin_resource(
        &mut self,
        owner: &str,
        kind: &str,
        name: &str,
        layer: Layer,
        parent: Option<&str>,
        data: serde_json::Value,
    ) -> anyhow::Result<String> {
        let id = format!("r{}", self.state.resources.len() + 1);
        self.state.resources.push(Resource {
            id: id.clone(),
            owner: owner.to_string(),
            kind: kind.to_string(),
            name: name.to_string(),
            layer,
            parent: parent.map(str::to_string),
            status: Status::Creating,
            data,
            created: Utc::now(),
            destroyed: None,
            error: None,
        });
        self.save()?;
        crate::faultpoint::reached(|| format!("creating:{owner}:{kind}:{name}"));
        Ok(id)
    }

    /// Sets one key of a resource's provider data (and saves): an id once the provider
    /// answered it, an address once known.
    pub fn set_data(
        &mut self,
        id: &str,
        key: &str,
        value: serde_json::Value,
    ) -> anyhow::Result<()> {
        if let Some(r) = self.state.resource_mut(id) {
            r.data[key] = value;
        }
        self.save()
    }

    /// Moves a resource to a new status (and saves).
    pub fn set_status(&mut self, id: &str, status: Status) -> anyhow::Result<()> {
        if let Some(r) = self.state.resource_mut(id) {
            r.status = status;
            r.error = None;
            if status == Status::Destroyed {
                r.destroyed = Some(Utc::now());
            }
        }
        self.save()?;
        if status == Status::Created
            && let Some(r) = self.state.resource(id)
        {
            crate::faultpoint::reached(|| format!("created:{}:{}:{}", r.owner, r.kind, r.name));
        }
        Ok(())
    }
}

impl Journal {
    /// Journals an attempt of the action `name` of the open step as running, before it starts.
    pub fn begin_attempt(&mut self, name: &str, attempt: u32, log: &Path) -> anyhow::Result<()> {
        let record = self.state.steps.last_mut().context("no open step record")?;
        record.attempts.push(Attempt {
            action: name.to_string(),
            attempt,
            started: Utc::now(),
            ended: None,
            outcome: Outcome::Running,
            exit_code: None,
            log: log.to_path_buf(),
            group: None,
        });
        self.save()?;
        crate::faultpoint::reached(|| format!("attempt:{name}"));
        Ok(())
    }

    /// Records the process group of the open step's running attempt, so that a rollci
    /// killed meanwhile leaves it findable.
    pub fn attempt_started(&mut self, group: ProcessId) -> anyhow::Result<()> {
        if let Some(a) = self
            .state
            .steps
            .last_mut()
            .and_then(|s| s.attempts.last_mut())
        {
            a.group = Some(group);
        }
        self.save()
    }

    /// Closes the open step's last attempt: its exit code (`None`: it could not be run) and
    /// whether that counts as passed, which the caller decides.
    pub fn end_attempt(
        &mut self,
        code: Option<i32>,
        passed: bool,
        aborted: bool,
    ) -> anyhow::Result<()> {
        let record = self.state.steps.last_mut().context("no open step record")?;
        if let Some(a) = record.attempts.last_mut() {
            a.ended = Some(Utc::now());
            a.exit_code = code;
            a.outcome = match (passed, aborted) {
                (_, true) => Outcome::Aborted,
                (true, false) => Outcome::Passed,
                (false, false) => Outcome::Failed,
            };
        }
        self.save()
    }
}

fn lock(workspace: &Path) -> anyhow::Result<File> {
    let path = workspace.join("state.lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("failed to open lock file `{}`", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(fail(
            Kind::Locked,
            format!(
                "workspace `{}` is in use by another rollci (lock `{}` is held); \
                 wait for it to finish or use another --workspace",
                workspace.display(),
                path.display()
            ),
        )),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("failed to lock `{}`", path.display()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_and_reload_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path(), || State::new("t", "A", "B")).unwrap();
        let id = j
            .begin_resource(
                "local",
                "dir",
                "lab",
                Layer::Host,
                None,
                serde_json::json!({"path": "/x"}),
            )
            .unwrap();
        assert_eq!(
            read(dir.path()).unwrap().unwrap().resources[0].status,
            Status::Creating
        );
        j.set_status(&id, Status::Created).unwrap();
        let back = read(dir.path()).unwrap().unwrap();
        assert_eq!(back, j.state);
        assert_eq!(back.resources[0].status, Status::Created);
    }

    #[test]
    fn second_open_is_refused_while_locked() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Journal::open(dir.path(), || State::new("t", "A", "B")).unwrap();
        let err = Journal::open(dir.path(), || State::new("t", "A", "B"))
            .err()
            .unwrap();
        assert_eq!(crate::exit::kind_of(&err), Kind::Locked);
        assert!(err.to_string().contains("in use by another rollci"));
    }

    #[test]
    fn newer_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = State::new("t", "A", "B");
        state.version = 99;
        std::fs::write(
            state_path(dir.path()),
            serde_json::to_string(&state).unwrap(),
        )
        .unwrap();
        let err = read(dir.path()).unwrap_err();
        assert!(err.to_string().contains("version 99"), "{err}");
    }
}
