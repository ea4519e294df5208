//! The `static` provider: hosts that already exist, reached over ssh.

mod provider;
mod settings;

pub use provider::StaticHosts;
pub use settings::{HostEntry, KIND, Settings};
