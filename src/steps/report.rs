//! `report`: the local reports first (they must survive a failed push), then
//! Elasticsearch when `ROLLCI_ES_URL` is set.

use crate::context::Ctx;
use crate::exit::{Kind, fail};
use crate::reports::{self, es};

pub fn run(ctx: &mut Ctx) -> anyhow::Result<()> {
    for path in reports::refresh(&ctx.journal.state, &ctx.workspace)? {
        crate::say!("--- report: {}", path.display());
    }
    push(ctx)
}

fn push(ctx: &Ctx) -> anyhow::Result<()> {
    let Some(config) = es::EsConfig::from_env()? else {
        return Ok(());
    };
    match es::push_workspace(&ctx.workspace, &ctx.journal.state, &config) {
        Ok(outcome) => {
            crate::say!("--- elasticsearch: {outcome}");
            Ok(())
        }
        Err(err) => Err(fail(
            Kind::Infra,
            format!("{err:#} (the local reports are written)"),
        )),
    }
}
