//! Destroying what the journal says exists: children before parents (processes → VMs →
//! networks → lab state → host), idempotently, then checking the flow was complete.

use crate::config::Teardown;
use crate::context::Ctx;
use crate::exit::{Kind, fail};
use crate::journal::{Outcome, Resource, State, Status};
use crate::persistent;
use crate::provider::Destroyed;
use crate::steps::FLOW;

/// What a cleanup did.
#[derive(Debug, Default)]
pub struct Tally {
    pub destroyed: usize,
    pub already_gone: usize,
    pub failed: Vec<String>,
}

/// Destroys the resources a teardown scope covers.
pub fn teardown(ctx: &mut Ctx, scope: Teardown) -> anyhow::Result<()> {
    let tally = match scope {
        Teardown::None => return Ok(()),
        Teardown::Virtual => destroy(ctx, |r| r.layer.is_virtual()),
        Teardown::Host => destroy(ctx, |_| true),
    }?;
    println!(
        "--- teardown ({scope:?}): {} destroyed, {} already gone",
        tally.destroyed, tally.already_gone
    );
    if tally.failed.is_empty() {
        Ok(())
    } else {
        anyhow::bail!(
            "teardown left resources behind: {}",
            tally.failed.join("; ")
        )
    }
}

/// Destroys every live resource matching `filter`, in reverse dependency order; a failure
/// is recorded on the resource and the rest still go.
pub fn destroy(ctx: &mut Ctx, filter: impl Fn(&Resource) -> bool) -> anyhow::Result<Tally> {
    ctx.provider.adopt(&mut ctx.journal)?;
    let mut tally = Tally::default();
    for id in destroy_order(&ctx.journal.state, &filter) {
        let resource = ctx
            .journal
            .state
            .resource(&id)
            .cloned()
            .expect("ordered ids exist");
        let destroyed = if resource.kind == persistent::KIND {
            persistent::destroy(&resource)
        } else {
            ctx.provider.destroy(&resource)
        };
        match destroyed {
            Ok(how) => {
                match how {
                    Destroyed::Now => tally.destroyed += 1,
                    Destroyed::AlreadyGone => tally.already_gone += 1,
                }
                ctx.journal.set_status(&id, Status::Destroyed)?;
            }
            Err(err) => {
                let text = format!("{} `{}` ({id}): {err:#}", resource.kind, resource.name);
                tally.failed.push(text.clone());
                if let Some(r) = ctx.journal.state.resource_mut(&id) {
                    r.error = Some(format!("{err:#}"));
                }
                ctx.journal.save()?;
            }
        }
    }
    Ok(tally)
}

/// Live resources in the order to destroy them: higher layer first, then deeper in the
/// parent tree first, then the newest first.
pub fn destroy_order(state: &State, filter: &impl Fn(&Resource) -> bool) -> Vec<String> {
    let mut live: Vec<(usize, &Resource)> = state
        .resources
        .iter()
        .enumerate()
        .filter(|(_, r)| r.status != Status::Destroyed && filter(r))
        .collect();
    live.sort_by_key(|(index, r)| std::cmp::Reverse((r.layer, depth(state, r), *index)));
    live.into_iter().map(|(_, r)| r.id.clone()).collect()
}

fn depth(state: &State, resource: &Resource) -> usize {
    let mut depth = 0;
    let mut parent = resource.parent.as_deref();
    while let Some(id) = parent {
        depth += 1;
        parent = state.resource(id).and_then(|p| p.parent.as_deref());
        if depth > state.resources.len() {
            break;
        }
    }
    depth
}

/// Steps of the flow that did not run or did not pass (empty: the flow was complete).
pub fn incomplete(state: &State) -> Vec<String> {
    FLOW.iter()
        .filter_map(|step| {
            let last = state.last_step(step.name(), step.phase());
            match last.map(|s| s.outcome) {
                Some(Outcome::Passed) => None,
                Some(Outcome::Failed) => Some(format!("{} failed", step.label())),
                Some(Outcome::Running) => Some(format!("{} was interrupted", step.label())),
                None => Some(format!("{} never ran", step.label())),
            }
        })
        .collect()
}

/// The `cleanup` step: destroy everything, then report on completeness.
pub fn run(ctx: &mut Ctx) -> anyhow::Result<()> {
    let tally = destroy(ctx, |_| true)?;
    println!(
        "--- cleanup: {} destroyed, {} already gone, {} failed",
        tally.destroyed,
        tally.already_gone,
        tally.failed.len()
    );
    let missing = incomplete(&ctx.journal.state);
    if missing.is_empty() {
        println!("--- flow complete: every step ran and passed");
    } else {
        println!("!!! INCOMPLETE FLOW: {}", missing.join(", "));
    }
    if !tally.failed.is_empty() {
        return Err(fail(
            Kind::Infra,
            format!(
                "cleanup could not destroy {} resource(s), run `rollci cleanup` again: {}",
                tally.failed.len(),
                tally.failed.join("; ")
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::Layer;

    fn resource(id: &str, layer: Layer, parent: Option<&str>) -> Resource {
        Resource {
            id: id.into(),
            kind: "dir".into(),
            name: id.into(),
            layer,
            parent: parent.map(str::to_string),
            status: Status::Created,
            data: serde_json::Value::Null,
            created: chrono::Utc::now(),
            destroyed: None,
            error: None,
        }
    }

    #[test]
    fn children_and_higher_layers_go_first() {
        let mut state = State::new("t", "A", "B");
        state.resources = vec![
            resource("host", Layer::Host, None),
            resource("state", Layer::LabState, Some("host")),
            resource("net", Layer::Network, Some("host")),
            resource("vm1", Layer::Vm, Some("host")),
            resource("vm2", Layer::Vm, Some("host")),
            resource("proc", Layer::Process, Some("vm1")),
        ];
        state.resources[4].status = Status::Destroyed;
        let order = destroy_order(&state, &|_| true);
        assert_eq!(order, ["proc", "vm1", "net", "state", "host"]);
        let virtual_only = destroy_order(&state, &|r: &Resource| r.layer.is_virtual());
        assert_eq!(virtual_only, ["proc", "vm1", "net", "state"]);
    }

    #[test]
    fn a_fresh_journal_is_incomplete_step_by_step() {
        let state = State::new("t", "A", "B");
        let missing = incomplete(&state);
        assert_eq!(missing.len(), 5);
        assert_eq!(missing[2], "verify:before never ran");
    }
}
