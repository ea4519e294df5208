//! The `libvirt` provider: VMs the pipeline builds, on this machine or a parent host.

mod boot;
mod domain;
mod image;
mod machine;
mod network;
mod owner;
mod provider;
mod settings;
mod virsh;

pub use provider::Libvirt;
pub use settings::{KIND, Settings};
