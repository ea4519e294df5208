//! Providers: where a lab's hosts come from, and the owners that destroy what the journal
//! says they made. A provider is a folder of its own; this file is the seam.

mod interface;
mod libvirt;
mod local;
mod openstack;
mod sockets;
mod ssh;
mod static_hosts;
mod strays;
mod tunnel;

use crate::config::Config;

pub use interface::{Destroyed, Finding, KeptLogs, Owner, Provider};
pub use local::Local;
pub use openstack::{Leak, Sweep, sweep_cloud};

/// The provider a lab file asks for, its `[provider]` settings parsed and validated by it
/// (errors name the file, the line and the key).
pub fn from_config(
    config: &Config,
    workspace: &std::path::Path,
) -> anyhow::Result<Box<dyn Provider>> {
    let settings = config.provider.settings.clone();
    match config.provider.kind.as_str() {
        local::KIND => Ok(Box::new(Local::new(
            local::Settings::parse(config, settings)?,
            workspace,
        ))),
        static_hosts::KIND => Ok(Box::new(static_hosts::StaticHosts::new(
            static_hosts::Settings::parse(config, settings)?,
            workspace,
        ))),
        libvirt::KIND => Ok(Box::new(libvirt::Libvirt::new(
            libvirt::Settings::parse(config, settings)?,
            workspace,
            &config.base_dir(),
        ))),
        openstack::KIND => Ok(Box::new(openstack::OpenStack::new(
            openstack::Settings::parse(config, settings)?,
            config.run.clone(),
            workspace,
            &config.base_dir(),
        ))),
        other => Err(config.problem(
            "provider.kind",
            format!(
                "unknown provider `{other}` (known: `{}`, `{}`, `{}`, `{}`)",
                local::KIND,
                static_hosts::KIND,
                libvirt::KIND,
                openstack::KIND
            ),
        )),
    }
}
