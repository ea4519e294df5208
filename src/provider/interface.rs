//! What every provider and owner of resources offers the steps and the teardown.

use std::path::Path;

use crate::exec::tools::Tool;
use crate::workspace::journal::{Journal, Resource};

/// What an owner did with a resource it was asked to destroy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destroyed {
    Now,
    AlreadyGone,
}

/// Whoever made a journaled resource and can destroy it (a provider, the persistent
/// resources). Cleanup routes each resource to its owner by the resource's `owner` field.
pub trait Owner {
    /// The name journaled as the `owner` of what it makes.
    fn name(&self) -> &'static str;
    /// Whether resources journaled under `owner` are this one's to destroy (a provider that
    /// composes another also owns what that one journaled).
    fn owns(&self, owner: &str) -> bool {
        owner == self.name()
    }
    /// Destroys one resource; "already gone" is success.
    fn destroy(&self, resource: &Resource) -> anyhow::Result<Destroyed>;
}

/// One source of hosts. Every method journals before it creates.
pub trait Provider: Owner {
    /// Acquires the host(s) and records them in the journal (names, addresses, ports,
    /// groups, how to connect); idempotent.
    fn acquire(&self, journal: &mut Journal) -> anyhow::Result<()>;
    /// Builds the lab on the host (state, networks, VMs); idempotent.
    fn build(&self, journal: &mut Journal) -> anyhow::Result<()>;
    /// Cheap, after every attempt: journals what the lab announced it started and marks
    /// what has gone.
    fn reconcile(&self, journal: &mut Journal) -> anyhow::Result<()>;
    /// Thorough, before a teardown only: finds resources of this run the journal missed
    /// (a process table scan, an API listing by tag) and journals them.
    fn find_strays(&self, journal: &mut Journal) -> anyhow::Result<()>;
    /// Variables every action receives (e.g. `rollci_lab_dir`).
    fn vars(&self) -> serde_json::Map<String, serde_json::Value>;
    /// External tools the provider itself needs.
    fn tools(&self) -> Vec<Tool>;
    /// Environment every tool gets (e.g. Ansible's ssh options).
    fn tool_env(&self) -> Vec<(String, String)> {
        Vec::new()
    }
    /// The SOCKS5 tunnel (`127.0.0.1:PORT`) the journal says this provider opened for
    /// rollci's own requests to the lab, if any.
    fn socks(&self, _journal: &Journal) -> Option<String> {
        None
    }
    /// Whether anything may connect to the journal's hosts (playbooks, the `[logs]` fetch):
    /// false for a server rented only to be had (`reach = "none"`), whose address rollci
    /// never contacts.
    fn reaches_hosts(&self) -> bool {
        true
    }
    /// Copies the lab's own logs into `into` (the run's logs folder) before a teardown
    /// removes them; idempotent.
    fn keep_logs(&self, _journal: &Journal, _into: &Path) -> anyhow::Result<KeptLogs> {
        Ok(KeptLogs::default())
    }
    /// What `doctor` checks beyond tools (a daemon that answers, an image, acceleration).
    fn diagnose(&self) -> Vec<Finding> {
        Vec::new()
    }
}

/// What [`Provider::keep_logs`] copied.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct KeptLogs {
    pub files: usize,
    pub bytes: u64,
    /// Files past the size or count limit, not copied.
    pub left_out: usize,
}

/// One line of `doctor`: something the provider needs, found or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub what: &'static str,
    pub ok: bool,
    pub detail: String,
}

impl Finding {
    pub fn ok(what: &'static str, detail: String) -> Finding {
        Finding {
            what,
            ok: true,
            detail,
        }
    }

    pub fn missing(what: &'static str, detail: String) -> Finding {
        Finding {
            what,
            ok: false,
            detail,
        }
    }
}
