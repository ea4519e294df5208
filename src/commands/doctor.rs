//! `rollci doctor`: every tool the lab needs, found with `which`, and how to install what
//! is missing.

use super::lab;
use crate::cli::Global;
use crate::exec::tools::{self, Tool};
use crate::exit::{self, Kind, fail};
use crate::provider;

/// Checks every tool the lab needs; exit 3 when one is missing.
pub fn run(g: &Global) -> anyhow::Result<u8> {
    let config = lab::load_config(g)?;
    let provider = provider::from_config(&config, &g.workspace())?;
    let mut needed = provider.tools();
    for (key, action) in config.actions() {
        match (&action.playbook, &action.command) {
            (Some(_), _) => needed.push(Tool::new("ansible-playbook", "playbook actions")),
            (None, Some(argv)) => needed.push(Tool::new(&argv[0], &format!("`{key}`"))),
            _ => {}
        }
    }
    if config.logs.is_some() {
        needed.push(Tool::new(
            "ansible-playbook",
            "`[logs]` (fetching the hosts' logs)",
        ));
    }
    let checks = tools::check(&needed);
    let mut missing = 0;
    for c in &checks {
        match &c.found {
            Some(path) => crate::say!("ok       {:<20} {}", c.tool.name, path.display()),
            None => {
                missing += 1;
                crate::say!("MISSING  {:<20} needed for {}", c.tool.name, c.tool.why);
                crate::say!("         hint: {}", tools::install_hint(&c.tool.name));
            }
        }
    }
    let findings = provider.diagnose();
    for f in &findings {
        let mark = if f.ok { "ok" } else { "MISSING" };
        crate::say!("{mark:<8} {:<20} {}", f.what, f.detail);
    }
    missing += findings.iter().filter(|f| !f.ok).count();
    if missing > 0 {
        return Err(fail(Kind::Infra, format!("{missing} need(s) missing")));
    }
    crate::say!("all {} tools found", checks.len());
    Ok(exit::OK)
}
