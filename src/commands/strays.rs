//! `rollci strays`: the servers rollci rented from a cloud that outlived their run, listed
//! or (`--delete`) removed; for a periodic job, it needs no lab file.

use crate::cli::{Global, StraysArgs};
use crate::exit::{self, Kind, fail};
use crate::provider::{Sweep, sweep_cloud};

pub fn run(g: &Global, args: &StraysArgs) -> anyhow::Result<u8> {
    crate::signals::install()?;
    if g.cloud.is_none() && std::env::var_os("OS_AUTH_URL").is_none() {
        return Err(fail(
            Kind::Usage,
            "which cloud? name it with --cloud (or OS_CLOUD), or set the OS_* variables",
        ));
    }
    let leaks = sweep_cloud(&Sweep {
        cloud: g.cloud.as_deref(),
        region: g.region.as_deref(),
        service_name: args.service_name.as_deref(),
        lab: args.lab.as_deref(),
        interval: args.interval,
        delete: args.delete,
    })?;
    if args.json {
        crate::say!("{}", serde_json::to_string_pretty(&leaks)?);
    } else if leaks.is_empty() {
        crate::say!("no leaked server");
    }
    for leak in leaks.iter().filter(|_| !args.json) {
        let region = leak.region.as_deref().unwrap_or("-");
        let outcome = leak
            .outcome
            .as_deref()
            .unwrap_or("listed (--delete removes it)");
        crate::say!(
            "{region}  {}  {}  lab {} run {}: {}: {outcome}",
            leak.id,
            leak.name,
            leak.lab,
            leak.run,
            leak.reason
        );
    }
    let failed = leaks
        .iter()
        .filter(|l| {
            l.outcome
                .as_deref()
                .is_some_and(|o| o.starts_with("not deleted"))
        })
        .count();
    match failed {
        0 => Ok(exit::OK),
        n => Err(fail(
            Kind::Infra,
            format!("{n} leaked server(s) could not be deleted"),
        )),
    }
}
