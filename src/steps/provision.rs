//! `provision`: acquire the host, prepare it, build the lab on it, prepare its VMs.

use super::action::{self, base_vars};
use crate::config::Teardown;
use crate::context::Ctx;
use crate::teardown;

pub fn run(ctx: &mut Ctx) -> anyhow::Result<()> {
    if let Err(err) = ctx.provider.acquire(&mut ctx.journal) {
        // The seed's rule: a failure while getting the host deletes the host.
        teardown::teardown(ctx, Teardown::Host)?;
        return Err(err.context("failed to acquire the host (its resources were destroyed)"));
    }
    if ctx.acquire_only {
        crate::say!("--- host acquired; stopping there (--acquire-only)");
        return Ok(());
    }
    let release = ctx.journal.state.from_release.clone();
    let config = ctx.config.provision.clone();
    let vars = base_vars(ctx, "provision", &release);
    action::run_all(ctx, "provision", &config.host, vars.clone())?;
    build(ctx)?;
    action::run_all(ctx, "provision", &config.lab, vars.clone())?;
    action::run_all(ctx, "provision", &config.vms, vars)
}

/// The seed's rule: a failure while building the lab destroys its virtual resources.
fn build(ctx: &mut Ctx) -> anyhow::Result<()> {
    if let Err(err) = ctx.provider.build(&mut ctx.journal) {
        teardown::teardown(ctx, Teardown::Virtual)?;
        return Err(err.context("failed to build the lab (its virtual resources were destroyed)"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;

    #[test]
    fn a_failure_while_acquiring_the_host_destroys_what_it_left() {
        let ws = tempfile::tempdir().unwrap();
        let (mut ctx, fakes) = testing::ctx(ws.path(), testing::config(""), |_| unreachable!());
        fakes.acquire_failures.set(1);
        let err = run(&mut ctx).unwrap_err();
        assert!(
            format!("{err:#}").contains("failed to acquire the host"),
            "{err:#}"
        );
        assert_eq!(
            *fakes.calls.borrow(),
            ["acquire", "find_strays", "destroy host"]
        );
        assert_eq!(ctx.journal.state.live().count(), 0);
    }
}
