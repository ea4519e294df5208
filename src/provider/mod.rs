//! Providers: where a lab's hosts come from and how its resources are destroyed.

mod local;

use crate::config::{Config, ProviderKind};
use crate::journal::{Journal, Resource};
use crate::tools::Tool;

pub use local::Local;

/// What a provider did with a resource it was asked to destroy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destroyed {
    Now,
    AlreadyGone,
}

/// One source of hosts. Every method journals before it creates.
pub trait Provider {
    /// Acquires the host(s) and records them; idempotent.
    fn acquire(&self, journal: &mut Journal) -> anyhow::Result<()>;
    /// Builds the lab on the host (state, networks, VMs); idempotent.
    fn build(&self, journal: &mut Journal) -> anyhow::Result<()>;
    /// Journals what actions left running (processes) and marks what has gone.
    fn adopt(&self, journal: &mut Journal) -> anyhow::Result<()>;
    /// Destroys one resource; "already gone" is success.
    fn destroy(&self, resource: &Resource) -> anyhow::Result<Destroyed>;
    /// Variables every action receives (e.g. `rollci_lab_dir`).
    fn vars(&self) -> serde_json::Map<String, serde_json::Value>;
    /// External tools the provider itself needs.
    fn tools(&self) -> Vec<Tool>;
}

/// The provider a lab file asks for, working in `workspace`.
pub fn from_config(config: &Config, workspace: &std::path::Path) -> Box<dyn Provider> {
    match config.provider.kind {
        ProviderKind::Local => Box::new(Local::new(config.provider.clone(), workspace)),
    }
}
