//! Persistent resources: created through the system's API before the upgrade, journaled like
//! any resource, checked after it (intact / changed / lost) and removed by cleanup.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::checks::availability::host_vars;
use crate::checks::probe;
use crate::config::{Config, PersistentConfig, RequestConfig};
use crate::context::Ctx;
use crate::provider::{self, Destroyed};
use crate::secret::Secret;
use crate::workspace::evidence::{self, Persistent, PersistentOutcome};
use crate::workspace::journal::{Layer, Resource, State, Status};

/// The journal kind of a persistent resource.
pub const KIND: &str = "api-resource";
/// The journal owner of persistent resources.
pub const OWNER: &str = "persistent";
/// Per request. Generous: a real API's first write on a loaded 2-core agent (Keystone's first
/// project POST measured past 10 s in CI) is slow, not lost, and a timeout here fails the run.
const TIMEOUT: Duration = Duration::from_secs(60);
const FILE: &str = "persistent.json";

/// Phase `before`: create each resource (journaled first) and checksum what reads back.
pub fn create_all(ctx: &mut Ctx) -> anyhow::Result<Vec<String>> {
    let configs = ctx.config.persistent.clone();
    let hosts = host_vars(&ctx.journal.state);
    let mut records = Vec::new();
    let mut problems = Vec::new();
    for config in &configs {
        let record = create(ctx, config, &hosts)?;
        if record.outcome != PersistentOutcome::Created {
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
    let token = token(config)?;
    let delete = expanded(&config.delete, hosts);
    let data = json!({ "delete": delete_data(&delete) });
    // A re-run of `verify --phase before` recreates the resource under its first record.
    let known = ctx
        .journal
        .state
        .live()
        .find(|r| r.owner == OWNER && r.name == config.name);
    let id = match known.map(|r| r.id.clone()) {
        Some(id) => id,
        None => ctx.journal.begin_resource(
            OWNER,
            KIND,
            &config.name,
            Layer::Data,
            lab.as_deref(),
            data,
        )?,
    };
    let created = call(&authed(expanded(&config.create, hosts), &token));
    let captured = created.as_ref().map(|body| capture(config, body));
    let checksum = match &captured {
        Ok(Ok(values)) => {
            if let Some(r) = ctx.journal.state.resource_mut(&id) {
                r.data["captured"] = json!(values);
                let delete = expanded(&config.delete, &with(hosts, values));
                r.data["delete"] = delete_data(&delete);
            }
            read_checksum(config, &with(hosts, values), &token)
        }
        Ok(Err(e)) => Err(anyhow::anyhow!("{e}")),
        Err(e) => Err(anyhow::anyhow!("{e:#}")),
    };
    // Even a half-failed create may have left something: it stays journaled for cleanup.
    ctx.journal.set_status(&id, Status::Created)?;
    Ok(match checksum {
        Ok(Some(sum)) => record(config, PersistentOutcome::Created, Some(sum), None),
        Ok(None) => record(
            config,
            PersistentOutcome::Lost,
            None,
            Some("not found right after creation".into()),
        ),
        Err(e) => record(
            config,
            PersistentOutcome::Lost,
            None,
            Some(format!("{e:#}")),
        ),
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
        let vars = with(&hosts, &captured_of(&ctx.journal.state, &config.name));
        after.push(check(config, old, &vars));
    }
    evidence::write(&ctx.workspace, FILE, &after)?;
    Ok(after
        .iter()
        .filter(|p| p.outcome != PersistentOutcome::Intact)
        .map(|p| {
            format!(
                "`{}` {}{}",
                p.name,
                p.outcome.as_str(),
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
    let checked = token(config).and_then(|t| read_checksum(config, hosts, &t));
    match (checked, old) {
        (Ok(Some(now)), Some(old)) if now == old => {
            record(config, PersistentOutcome::Intact, Some(now), None)
        }
        (Ok(Some(now)), _) => record(
            config,
            PersistentOutcome::Changed,
            Some(now),
            Some("content differs from before the upgrade".into()),
        ),
        (Ok(None), _) => record(
            config,
            PersistentOutcome::Lost,
            None,
            Some("not found".into()),
        ),
        (Err(e), _) => record(
            config,
            PersistentOutcome::Lost,
            None,
            Some(format!("{e:#}")),
        ),
    }
}

fn record(
    config: &PersistentConfig,
    outcome: PersistentOutcome,
    checksum: Option<String>,
    detail: Option<String>,
) -> Persistent {
    Persistent {
        name: config.name.clone(),
        outcome,
        checksum,
        detail,
    }
}

/// The checksum of the resource as read back, `None` when the API says 404.
fn read_checksum(
    config: &PersistentConfig,
    hosts: &BTreeMap<String, String>,
    token: &Option<Secret>,
) -> anyhow::Result<Option<String>> {
    let read = authed(expanded(&config.read, hosts), token);
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

/// The owner of persistent resources at cleanup: it sends each one's delete request as the
/// lab file gives it (headers and body included: they are never journaled, since they may
/// carry tokens), with the hosts of the journal.
pub struct Owner {
    configs: Vec<PersistentConfig>,
    hosts: BTreeMap<String, String>,
}

impl Owner {
    pub fn new(config: &Config, state: &State) -> Owner {
        Owner {
            configs: config.persistent.clone(),
            hosts: host_vars(state),
        }
    }

    /// Whether a journaled resource is a persistent one (journals from before owners were
    /// recorded say so by its kind).
    pub fn owns(&self, resource: &Resource) -> bool {
        resource.owner == OWNER || (resource.owner.is_empty() && resource.kind == KIND)
    }

    /// The delete request of a resource: the lab file's, else (its entry was removed from
    /// the lab file since) the method and URL journaled when it was created.
    fn delete_request(&self, resource: &Resource) -> anyhow::Result<RequestConfig> {
        let captured = resource.data["captured"].as_object().into_iter().flatten();
        let captured: BTreeMap<String, String> = captured
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
            .collect();
        match self.configs.iter().find(|c| c.name == resource.name) {
            Some(config) => Ok(authed(
                expanded(&config.delete, &with(&self.hosts, &captured)),
                &token(config)?,
            )),
            None => serde_json::from_value(resource.data["delete"].clone())
                .context("persistent resource without its delete request"),
        }
    }
}

impl provider::Owner for Owner {
    fn name(&self) -> &'static str {
        OWNER
    }

    /// An API that no longer answers took the resource with it (the lab is being destroyed
    /// too).
    fn destroy(&self, resource: &Resource) -> anyhow::Result<Destroyed> {
        let delete = self.delete_request(resource)?;
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
}

/// Sends a request that must be accepted; its answer's body.
fn call(request: &RequestConfig) -> anyhow::Result<String> {
    let (status, body) = exchange(request)?;
    anyhow::ensure!(
        probe::accepted(request, status),
        "`{} {}` gave status {status}: {body}",
        request.method,
        request.url
    );
    Ok(body)
}

/// A Keystone token of the lab's cloud (the `OS_*` variables) when the resource asks.
fn token(config: &PersistentConfig) -> anyhow::Result<Option<Secret>> {
    if config.auth.is_none() {
        return Ok(None);
    }
    let cloud = crate::openstack::clouds::from_os_env(&crate::openstack::clouds::env_var)?;
    let session = crate::openstack::session::Session::open_in_lab(cloud, TIMEOUT)
        .with_context(|| format!("persistent resource `{}`: no token", config.name))?;
    Ok(Some(session.token()?))
}

/// The request with the token (headers are never journaled).
fn authed(mut request: RequestConfig, token: &Option<Secret>) -> RequestConfig {
    if let Some(token) = token {
        let header = "X-Auth-Token".to_string();
        request.headers.insert(header, token.expose().to_string());
    }
    request
}

/// The create answer's captured values, or what is missing.
fn capture(config: &PersistentConfig, body: &str) -> Result<BTreeMap<String, String>, String> {
    if config.capture.is_empty() {
        return Ok(BTreeMap::new());
    }
    let value: serde_json::Value =
        serde_json::from_str(body).map_err(|_| "the create answer is not JSON".to_string())?;
    let mut captured = BTreeMap::new();
    for (name, pointer) in &config.capture {
        let found = value
            .pointer(pointer)
            .ok_or(format!("no `{pointer}` in the create answer"))?;
        let text = match found {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        captured.insert(name.clone(), text);
    }
    Ok(captured)
}

fn captured_of(state: &State, name: &str) -> BTreeMap<String, String> {
    let record = state
        .resources
        .iter()
        .rev()
        .find(|r| r.owner == OWNER && r.name == name);
    let values = record
        .and_then(|r| r.data["captured"].as_object().cloned())
        .unwrap_or_default();
    values
        .into_iter()
        .filter_map(|(k, v)| Some((k, v.as_str()?.to_string())))
        .collect()
}

/// The hosts' values and the captured ones (`{id}`).
fn with(
    hosts: &BTreeMap<String, String>,
    captured: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut vars = hosts.clone();
    vars.extend(captured.iter().map(|(k, v)| (k.clone(), v.clone())));
    vars
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::Owner as _;
    use crate::testing::{self, Server};
    use crate::workspace::journal::Host;

    fn lab(addr: std::net::SocketAddr) -> Config {
        testing::config(&format!(
            "[[persistent]]\nname = \"doc\"\n\
             create = {{ method = \"PUT\", url = \"http://{{api}}/doc\", body = '{{\"a\": 1}}' }}\n\
             read = {{ url = \"http://{{api}}/doc\" }}\n\
             delete = {{ method = \"POST\", url = \"http://{{api}}/doc\", body = \":action=delete\", \
             headers = {{ X-Auth-Token = \"tok-{}\" }}, expect_status = [200] }}\n",
            addr.port()
        ))
    }

    fn with_api(ctx: &mut Ctx, addr: std::net::SocketAddr) {
        ctx.journal.state.hosts = vec![Host {
            name: "api".into(),
            address: addr.ip().to_string(),
            port: addr.port(),
            groups: vec![],
            connection: "local".into(),
            user: None,
            ports: Default::default(),
        }];
    }

    #[test]
    fn a_resource_is_journaled_before_its_create_request_is_sent() {
        let ws = tempfile::tempdir().unwrap();
        let journal = ws.path().join("state.json");
        let server = Server::start(move |raw| {
            let state = std::fs::read_to_string(&journal).unwrap_or_default();
            let journaled = state.contains("\"api-resource\"") && state.contains("creating");
            match (raw.starts_with("PUT"), journaled) {
                (true, true) => (201, String::new()),
                (true, false) => (500, "not journaled first".into()),
                _ => (200, "{\"a\": 1}".into()),
            }
        });
        let (mut ctx, _) = testing::ctx(ws.path(), lab(server.addr), |_| unreachable!());
        with_api(&mut ctx, server.addr);
        let problems = create_all(&mut ctx).unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        let r = ctx.journal.state.live().find(|r| r.kind == KIND).unwrap();
        assert_eq!((r.owner.as_str(), r.status), (OWNER, Status::Created));
        let saved: Vec<Persistent> = evidence::read(ws.path(), FILE).unwrap().unwrap();
        assert_eq!(saved[0].outcome, PersistentOutcome::Created);
        assert!(saved[0].checksum.as_deref().unwrap().starts_with("sha256:"));
    }

    #[test]
    fn cleanup_sends_the_delete_request_with_the_lab_files_headers_and_body() {
        let ws = tempfile::tempdir().unwrap();
        let server = Server::start(|raw| match raw.contains(":action=delete") {
            true => (200, String::new()),
            false => (400, "Missing ':action' field!".into()),
        });
        let (mut ctx, _) = testing::ctx(ws.path(), lab(server.addr), |_| unreachable!());
        with_api(&mut ctx, server.addr);
        let data = json!({ "delete": { "url": "http://x/doc", "method": "POST" } });
        let id = ctx
            .journal
            .begin_resource(OWNER, KIND, "doc", Layer::Data, None, data)
            .unwrap();
        let resource = ctx.journal.state.resource(&id).unwrap().clone();
        let owner = Owner::new(&ctx.config, &ctx.journal.state);
        assert_eq!(owner.destroy(&resource).unwrap(), Destroyed::Now);
        let sent = server.requests.lock().unwrap().join("\n");
        assert!(sent.starts_with("POST /doc"), "{sent}");
        assert!(
            sent.to_ascii_lowercase()
                .contains(&format!("x-auth-token: tok-{}", server.addr.port())),
            "{sent}"
        );
        let journal = std::fs::read_to_string(ws.path().join("state.json")).unwrap();
        assert!(!journal.contains("tok-"), "a header reached the journal");
    }

    #[test]
    fn a_resource_whose_api_is_gone_counts_as_gone_with_it() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let ws = tempfile::tempdir().unwrap();
        let (mut ctx, _) = testing::ctx(ws.path(), lab(port), |_| unreachable!());
        with_api(&mut ctx, port);
        let id = ctx
            .journal
            .begin_resource(OWNER, KIND, "doc", Layer::Data, None, json!({}))
            .unwrap();
        let resource = ctx.journal.state.resource(&id).unwrap().clone();
        let owner = Owner::new(&ctx.config, &ctx.journal.state);
        assert_eq!(owner.destroy(&resource).unwrap(), Destroyed::AlreadyGone);
    }
}
