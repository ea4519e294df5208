//! The teardown policy: which resources a scope covers and in which order they go
//! (children before parents: data → processes → VMs → networks → lab state → host), each
//! destroyed by its owner (the provider that made it, or the persistent resources), "already
//! gone" counting as success.

use crate::checks::persistent;
use crate::config::Teardown;
use crate::context::Ctx;
use crate::provider::{Destroyed, Owner, Provider};
use crate::workspace::journal::{Resource, State, Status};

/// What a teardown did.
#[derive(Debug, Default)]
pub struct Tally {
    pub destroyed: usize,
    pub already_gone: usize,
    pub failed: Vec<String>,
}

/// Destroys the resources a teardown scope covers (after a failed action or host).
pub fn teardown(ctx: &mut Ctx, scope: Teardown) -> anyhow::Result<()> {
    let tally = match scope {
        Teardown::None => return Ok(()),
        Teardown::Virtual => destroy(ctx, |r| r.layer.is_virtual()),
        Teardown::Host => destroy(ctx, |_| true),
    }?;
    crate::say!(
        "--- teardown ({scope:?}): {} destroyed, {} already gone",
        tally.destroyed,
        tally.already_gone
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
/// is recorded on the resource and the rest still go. Strays are looked for first: this is
/// the one moment a scan of everything the provider can see is worth its cost.
pub fn destroy(ctx: &mut Ctx, filter: impl Fn(&Resource) -> bool) -> anyhow::Result<Tally> {
    ctx.provider.find_strays(&mut ctx.journal)?;
    let order = destroy_order(&ctx.journal.state, &filter);
    if !order.is_empty() {
        crate::lab_logs::keep(ctx);
    }
    let data = persistent::Owner::new(&ctx.config, &ctx.journal.state);
    let mut tally = Tally::default();
    for id in order {
        let Some(resource) = ctx.journal.state.resource(&id).cloned() else {
            continue;
        };
        crate::faultpoint::reached(|| {
            format!(
                "destroying:{}:{}:{}",
                resource.owner, resource.kind, resource.name
            )
        });
        let destroyed =
            owner_of(&resource, ctx.provider.as_ref(), &data).and_then(|o| o.destroy(&resource));
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
                tally.failed.push(text);
                if let Some(r) = ctx.journal.state.resource_mut(&id) {
                    r.error = Some(format!("{err:#}"));
                }
                ctx.journal.save()?;
            }
        }
    }
    Ok(tally)
}

/// The owner a resource is routed to: the one its journal entry names.
fn owner_of<'a>(
    resource: &Resource,
    provider: &'a dyn Provider,
    data: &'a persistent::Owner,
) -> anyhow::Result<&'a dyn Owner> {
    if data.owns(resource) {
        return Ok(data);
    }
    if resource.owner.is_empty() || provider.owns(&resource.owner) {
        return Ok(provider);
    }
    anyhow::bail!(
        "it was made by `{}`, which is not in this lab (its provider is `{}`): \
         restore the lab file it was created with",
        resource.owner,
        provider.name()
    )
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workspace::journal::Layer;

    fn resource(id: &str, layer: Layer, parent: Option<&str>) -> Resource {
        Resource {
            id: id.into(),
            owner: "local".into(),
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
    fn each_resource_goes_to_its_owner_and_a_stranger_is_kept_with_its_error() {
        let ws = tempfile::tempdir().unwrap();
        let (mut ctx, fakes) =
            crate::testing::ctx(ws.path(), crate::testing::config(""), |_| unreachable!());
        ctx.provider.acquire(&mut ctx.journal).unwrap();
        let j = &mut ctx.journal;
        let data =
            serde_json::json!({ "delete": { "url": "http://127.0.0.1:1/x", "method": "DELETE" } });
        let doc = j
            .begin_resource(
                persistent::OWNER,
                persistent::KIND,
                "doc",
                Layer::Data,
                None,
                data,
            )
            .unwrap();
        let other = j
            .begin_resource(
                "libvirt",
                "domain",
                "vm9",
                Layer::Vm,
                None,
                serde_json::json!({}),
            )
            .unwrap();
        let tally = destroy(&mut ctx, |_| true).unwrap();
        assert_eq!(
            *fakes.calls.borrow(),
            ["acquire", "find_strays", "destroy host"]
        );
        assert_eq!(
            (tally.destroyed, tally.already_gone),
            (1, 1),
            "the API at port 1 is gone"
        );
        assert_eq!(
            ctx.journal.state.resource(&doc).unwrap().status,
            Status::Destroyed
        );
        let kept = ctx.journal.state.resource(&other).unwrap();
        assert_eq!(kept.status, Status::Creating);
        assert!(
            kept.error.as_deref().unwrap().contains("made by `libvirt`"),
            "{kept:?}"
        );
        assert_eq!(tally.failed.len(), 1);
    }
}
