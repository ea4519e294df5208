//! The `openstack` provider: the lab's host is a Nova server rented for the run.

mod leaks;
mod provider;
mod server;
mod settings;

pub use leaks::{Leak, Sweep, sweep_cloud};
pub use provider::OpenStack;
pub use settings::{KIND, Settings};
