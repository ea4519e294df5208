//! Persistent resources: created through the system's API before the upgrade, journaled like
//! any resource, checked after it (intact / changed / lost) and removed by cleanup.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::availability::host_vars;
use crate::config::{PersistentConfig, RequestConfig};
use crate::context::Ctx;
use crate::evidence::{self, Persistent};
use crate::journal::{Layer, Resource, Status};
use crate::probe;
use crate::provider::Destroyed;

/// The journal kind of a persistent resource.
pub const KIND: &str = "api-resource";
const TIMEOUT: Duration = Duration::from_secs(10);
const FILE: &str = "persistent.json";

/// Phase `before`: create each resource (journaled first) and checksum what reads back.
pub fn create_all(ctx: &mut Ctx) -> anyhow::Result<Vec<String>> {
    let configs = ctx.config.persistent.clone();
    let hosts = host_vars(&ctx.journal.state);
    let mut records = Vec::new();
    let mut problems = Vec::new();
    for config in &configs {
        let record = create(ctx, config, &hosts)?;
        if record.outcome != "created" {
            problems.push(format!(
                "`{}`: {}",
                record.name,
                record.detail.clone().unwrap_or_default()
            ));
        }
        records.push(record);
    }
    if !configs.is_empty() {
        evidence::write(&ctx.workspace, FILE, &records)?;
    }
    Ok(problems)
}

fn create(
    ctx: &mut Ctx,
    config: &PersistentConfig,
    hosts: &BTreeMap<String, String>,
) -> anyhow::Result<Persistent> {
    let lab = ctx
        .journal
        .state
        .live()
        .find(|r| r.layer == Layer::Host)
        .map(|r| r.id.clone());
    let delete = expanded(&config.delete, hosts);
    let data = json!({ "delete": delete_data(&delete) });
    let id = ctx
        .journal
        .begin_resource(KIND, &config.name, Layer::Data, lab.as_deref(), data)?;
    let created = call(&expanded(&config.create, hosts));
    let checksum = match created {
        Ok(_) => read_checksum(config, hosts),
        Err(e) => Err(e),
    };
    // Even a half-failed create may have left something: it stays journaled for cleanup.
    ctx.journal.set_status(&id, Status::Created)?;
    Ok(match checksum {
        Ok(Some(sum)) => record(config, "created", Some(sum), None),
        Ok(None) => record(
            config,
            "lost",
            None,
            Some("not found right after creation".into()),
        ),
        Err(e) => record(config, "lost", None, Some(format!("{e:#}"))),
    })
}

/// Phase `after`: compare each resource with its checksum from before.
pub fn verify_all(ctx: &Ctx) -> anyhow::Result<Vec<String>> {
    let Some(before) = evidence::read::<Vec<Persistent>>(&ctx.workspace, FILE)? else {
        return Ok(Vec::new());
    };
    let hosts = host_vars(&ctx.journal.state);
    let mut after = Vec::new();
    for config in &ctx.config.persistent {
        let old = before
            .iter()
            .find(|p| p.name == config.name)
            .and_then(|p| p.checksum.clone());
        after.push(check(config, old, &hosts));
    }
    evidence::write(&ctx.workspace, FILE, &after)?;
    Ok(after
        .iter()
        .filter(|p| p.outcome != "intact")
        .map(|p| {
            format!(
                "`{}` {}{}",
                p.name,
                p.outcome,
                p.detail
                    .as_ref()
                    .map(|d| format!(": {d}"))
                    .unwrap_or_default()
            )
        })
        .collect())
}

fn check(
    config: &PersistentConfig,
    old: Option<String>,
    hosts: &BTreeMap<String, String>,
) -> Persistent {
    match (read_checksum(config, hosts), old) {
        (Ok(Some(now)), Some(old)) if now == old => record(config, "intact", Some(now), None),
        (Ok(Some(now)), _) => record(
            config,
            "changed",
            Some(now),
            Some("content differs from before the upgrade".into()),
        ),
        (Ok(None), _) => record(config, "lost", None, Some("not found".into())),
        (Err(e), _) => record(config, "lost", None, Some(format!("{e:#}"))),
    }
}

fn record(
    config: &PersistentConfig,
    outcome: &str,
    checksum: Option<String>,
    detail: Option<String>,
) -> Persistent {
    Persistent {
        name: config.name.clone(),
        outcome: outcome.into(),
        checksum,
        detail,
    }
}

/// The checksum of the resource as read back, `None` when the API says 404.
fn read_checksum(
    config: &PersistentConfig,
    hosts: &BTreeMap<String, String>,
) -> anyhow::Result<Option<String>> {
    let read = expanded(&config.read, hosts);
    let (status, body) = exchange(&read)?;
    if status == 404 {
        return Ok(None);
    }
    anyhow::ensure!(
        probe::accepted(&read, status),
        "reading `{}` gave status {status}",
        read.url
    );
    let part = match &config.json_pointer {
        Some(pointer) => {
            let value: serde_json::Value =
                serde_json::from_str(&body).context("the read body is not JSON")?;
            value
                .pointer(pointer)
                .cloned()
                .with_context(|| format!("no `{pointer}` in the read body"))?
                .to_string()
        }
        None => body,
    };
    Ok(Some(format!(
        "sha256:{:x}",
        Sha256::digest(part.as_bytes())
    )))
}

/// Cleanup of one persistent resource: its delete request. An API that no longer answers
/// took the resource with it (the lab is being destroyed too).
pub fn destroy(resource: &Resource) -> anyhow::Result<Destroyed> {
    let delete: RequestConfig = serde_json::from_value(resource.data["delete"].clone())
        .context("persistent resource without its delete request")?;
    match exchange(&delete) {
        Ok((404 | 410, _)) => Ok(Destroyed::AlreadyGone),
        Ok((status, _)) if probe::accepted(&delete, status) => Ok(Destroyed::Now),
        Ok((status, body)) => anyhow::bail!(
            "`{} {}` gave status {status}: {body}",
            delete.method,
            delete.url
        ),
        Err(e) if e.to_string().starts_with("refused") => Ok(Destroyed::AlreadyGone),
        Err(e) => Err(e),
    }
}

fn call(request: &RequestConfig) -> anyhow::Result<()> {
    let (status, body) = exchange(request)?;
    anyhow::ensure!(
        probe::accepted(request, status),
        "`{} {}` gave status {status}: {body}",
        request.method,
        request.url
    );
    Ok(())
}

fn exchange(request: &RequestConfig) -> anyhow::Result<(u16, String)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let client = probe::client()?;
    runtime
        .block_on(probe::exchange(&client, request, TIMEOUT))
        .map_err(|(class, text)| {
            anyhow::anyhow!("{class}: {} {}: {text}", request.method, request.url)
        })
}

fn expanded(request: &RequestConfig, hosts: &BTreeMap<String, String>) -> RequestConfig {
    let mut r = request.clone();
    r.url = probe::expand(&r.url, hosts);
    r.body = r.body.map(|b| probe::expand(&b, hosts));
    r
}

fn delete_data(delete: &RequestConfig) -> serde_json::Value {
    // Headers may carry tokens: they are never journaled.
    json!({ "url": delete.url, "method": delete.method, "expect_status": delete.expect_status })
}
