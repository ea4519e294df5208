//! Booting the guests: every domain started, then every guest waited for over ssh at once,
//! each through an ssh master journaled before it is started; a guest that does not come
//! up is reported with the tail of its console.

use std::path::Path;

use serde_json::json;

use super::provider::{Guest, Libvirt, MASTER};
use super::settings::KIND;
use crate::workspace::journal::{Journal, Layer, Status};

impl Libvirt {
    /// Starts every guest, then waits for all of them over ssh at once.
    pub(super) fn boot(&self, journal: &mut Journal, guests: &[Guest]) -> anyhow::Result<()> {
        for g in guests {
            self.virsh()?.start(&g.domain)?;
        }
        let mut waiting = Vec::new();
        for g in guests {
            let known = journal
                .state
                .live()
                .any(|r| r.kind == MASTER && r.name == g.name);
            if !known {
                let data = json!({ "host": g.name, "config": self.ssh.config });
                let id =
                    journal.begin_resource(KIND, MASTER, &g.name, Layer::Process, None, data)?;
                waiting.push(id);
            }
        }
        let results: Vec<anyhow::Result<()>> = std::thread::scope(|scope| {
            let handles: Vec<_> = guests
                .iter()
                .map(|g| scope.spawn(|| self.ssh.wait_up(&g.name, self.settings.wait)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("panicked")))
                })
                .collect()
        });
        for id in waiting {
            journal.set_status(&id, Status::Created)?;
        }
        for (g, result) in guests.iter().zip(results) {
            if let Err(e) = result {
                let console = self.console_log(journal, &g.domain);
                let local = self.local_console(journal, &g.domain);
                let kept = self.machine.fetch(&console, &local);
                return Err(e.context(format!(
                    "guest `{}` ({}) did not come up; its console: {}{}",
                    g.name,
                    g.domain,
                    kept.display(),
                    tail(&kept)
                )));
            }
        }
        Ok(())
    }
}

/// The last lines of a console log, for an error message.
fn tail(path: &Path) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&text[text.len().saturating_sub(1500)..]).into_owned();
    match text.trim().is_empty() {
        true => " (empty)".into(),
        false => format!("\n--- console (tail)\n{}", text.trim_end()),
    }
}
