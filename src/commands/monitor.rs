//! `rollci monitor`: the lab's availability probes alone, for debugging by hand.

use super::lab;
use crate::cli::Global;
use crate::exit::{self, Kind, fail};

/// Probes alone, for debugging by hand: no lock (an upgrade may be running in another
/// rollci), results in `evidence/monitor-<time>.jsonl` and printed per service.
pub fn run(g: &Global, duration: Option<std::time::Duration>) -> anyhow::Result<u8> {
    let config = lab::load_config(g)?;
    let state = lab::read_state(g)?;
    if config.probes.is_empty() {
        return Err(fail(Kind::Usage, "the lab file has no [[probes]]"));
    }
    let specs = crate::checks::probe::specs(
        &config.probes,
        &crate::checks::availability::host_vars(&state),
        &config.base_dir(),
    )?;
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S");
    let file =
        crate::workspace::evidence::dir(&g.workspace()).join(format!("monitor-{stamp}.jsonl"));
    let mut availability = crate::workspace::evidence::Availability {
        started: Some(chrono::Utc::now()),
        probes_file: Some(file.clone()),
        ..Default::default()
    };
    let monitor = crate::checks::probe::Monitor::start(specs.clone(), &file, "monitor")?;
    crate::say!("--- probing {} service(s); Ctrl-C stops", specs.len());
    wait_for(duration)?;
    let records = monitor.stop()?;
    availability.ended = Some(chrono::Utc::now());
    availability.services = crate::checks::probe::analyze(&specs, &records);
    crate::checks::availability::print_services(&availability);
    let name = format!("monitor-{stamp}.json");
    let path = crate::workspace::evidence::write(&g.workspace(), &name, &availability)?;
    crate::say!(
        "--- probes: {}\n--- summary: {}",
        file.display(),
        path.display()
    );
    let over = crate::checks::probe::over_budget(&availability.services);
    if over.is_empty() {
        Ok(exit::OK)
    } else {
        Err(fail(
            Kind::Check,
            format!("downtime over budget: {}", over.join("; ")),
        ))
    }
}

/// Sleeps for the duration, or until Ctrl-C (SIGINT) or SIGTERM.
fn wait_for(duration: Option<std::time::Duration>) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let sleep = async {
            match duration {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = sleep => {}
            _ = tokio::signal::ctrl_c() => crate::say!("--- interrupted: writing the results"),
            _ = term.recv() => crate::say!("--- terminated: writing the results"),
        }
        Ok(())
    })
}
