//! Availability during the upgrade: probes started before the first upgrade action (after a
//! baseline) and stopped after the last, results turned into `evidence/availability.json`.

use std::collections::BTreeMap;

use chrono::Utc;

use crate::checks::probe::{self, BASELINE, Monitor, Spec};
use crate::context::Ctx;
use crate::exit::{Kind, fail};
use crate::workspace::evidence::{self, ActionSpan, Availability};
use crate::workspace::journal::State;

/// The probes of one upgrade and the actions they saw.
pub struct Watch {
    running: Option<(Monitor, Vec<Spec>)>,
    availability: Availability,
}

/// `name -> address:port` of every host, for `{name}` in probe URLs, and `name:port-name ->
/// address:port` of its named ports (`{lb:keystone}`).
pub fn host_vars(state: &State) -> BTreeMap<String, String> {
    let mut vars = BTreeMap::new();
    for h in &state.hosts {
        vars.insert(h.name.clone(), format!("{}:{}", h.address, h.port));
        for (name, port) in &h.ports {
            vars.insert(
                format!("{}:{name}", h.name),
                format!("{}:{port}", h.address),
            );
        }
    }
    vars
}

impl Watch {
    /// Starts the lab's probes (if any) and waits out the baseline.
    pub fn start(ctx: &Ctx) -> anyhow::Result<Watch> {
        let mut availability = Availability {
            started: Some(Utc::now()),
            ..Availability::default()
        };
        if ctx.config.probes.is_empty() {
            return Ok(Watch {
                running: None,
                availability,
            });
        }
        let hosts = host_vars(&ctx.journal.state);
        let specs = probe::specs(&ctx.config.probes, &hosts, &ctx.config.base_dir())?;
        let file = evidence::dir(&ctx.workspace).join("probes.jsonl");
        let monitor = Monitor::start(specs.clone(), &file, BASELINE)?;
        crate::say!(
            "--- probing {} service(s), baseline {}",
            specs.len(),
            humantime::format_duration(ctx.config.probing.baseline)
        );
        std::thread::sleep(ctx.config.probing.baseline);
        availability.probes_file = Some(file);
        Ok(Watch {
            running: Some((monitor, specs)),
            availability,
        })
    }

    /// Marks the start of an upgrade action: probes from now on carry its name.
    pub fn begin(&mut self, action: &str) {
        if let Some((monitor, _)) = &self.running {
            monitor.set_action(action);
        }
        self.availability.actions.push(ActionSpan {
            name: action.to_string(),
            start: Utc::now(),
            end: None,
        });
    }

    pub fn end(&mut self) {
        if let Some(span) = self.availability.actions.last_mut() {
            span.end = Some(Utc::now());
        }
    }

    /// Stops the probes, writes the evidence and judges the downtime budgets.
    pub fn finish(mut self, ctx: &Ctx) -> anyhow::Result<()> {
        let Some((monitor, specs)) = self.running.take() else {
            self.availability.ended = Some(Utc::now());
            evidence::write(&ctx.workspace, "availability.json", &self.availability)?;
            return Ok(());
        };
        let records = monitor.stop()?;
        self.availability.ended = Some(Utc::now());
        self.availability.services = probe::analyze(&specs, &records);
        evidence::write(&ctx.workspace, "availability.json", &self.availability)?;
        print_services(&self.availability);
        let over = probe::over_budget(&self.availability.services);
        if over.is_empty() {
            Ok(())
        } else {
            Err(fail(
                Kind::Check,
                format!("downtime over budget: {}", over.join("; ")),
            ))
        }
    }
}

/// One line per service: the figures a person looks for first.
pub fn print_services(availability: &Availability) {
    for s in &availability.services {
        let budget = s
            .budget_ms
            .map(|b| format!(", budget {b} ms"))
            .unwrap_or_default();
        let own = s.own_windows();
        let late = match s.windows.len() - own {
            0 => String::new(),
            n => format!(
                ", {} ms in {n} window(s) of a late prober (not counted)",
                s.prober_late_ms
            ),
        };
        crate::say!(
            "--- {}: {} probes, {:.3}% available, {} ms down in {own} window(s){budget}{late}, probes at most {:.0} ms late",
            s.name,
            s.probes,
            s.availability,
            s.downtime_ms,
            s.max_late_ms
        );
        for w in &s.windows {
            crate::say!(
                "      window {} +{} ms ({} × {}) during {}{}{}",
                w.start.format("%H:%M:%S%.3f"),
                w.duration_ms,
                w.failures,
                w.class,
                w.action.as_deref().unwrap_or("-"),
                if w.prober_late {
                    ", prober late: not counted"
                } else {
                    ""
                },
                w.first_error
                    .as_deref()
                    .map(|e| format!("\n        first: {e}"))
                    .unwrap_or_default()
            );
        }
    }
}
