//! The `openstack` provider: rents the lab's host as a Nova server. The server is journaled
//! before the create request and its id the moment Nova answers; a server that goes to
//! ERROR or is late is deleted before the next attempt; cleanup deletes and waits until it
//! is gone, and finds by its metadata tag a server whose create a killed rollci never saw
//! answered. Once ACTIVE the server is reached like a `static` host (the same ssh code,
//! journaled under `static`).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use chrono::Utc;
use serde_json::{Value, json};

use super::server::{self, Built, Compute, TAG_DONE};
use super::settings::{KIND, Reach, Settings};
use crate::config::RunParams;
use crate::exec::tools::Tool;
use crate::exit::{Kind, fail};
use crate::openstack::nova::Refusal;
use crate::provider::interface::{Destroyed, Finding, Owner, Provider};
use crate::provider::libvirt::{self, Libvirt};
use crate::provider::static_hosts::{self, HostEntry, StaticHosts};
use crate::workspace::journal::{Host, Journal, Layer, Resource, Status};

/// The journal kind of a Nova server.
pub const SERVER: &str = "server";

pub struct OpenStack {
    settings: Settings,
    run: RunParams,
    workspace: PathBuf,
    base_dir: PathBuf,
}

impl OpenStack {
    pub fn new(settings: Settings, run: RunParams, workspace: &Path, base_dir: &Path) -> OpenStack {
        let workspace = std::path::absolute(workspace).unwrap_or_else(|_| workspace.to_path_buf());
        OpenStack {
            settings,
            run,
            workspace,
            base_dir: base_dir.to_path_buf(),
        }
    }

    fn cloud(&self) -> Option<&str> {
        self.run.cloud.as_deref().or(self.settings.cloud.as_deref())
    }

    fn region(&self) -> Option<&str> {
        self.run
            .region
            .as_deref()
            .or(self.settings.region.as_deref())
    }

    /// The server as a `static` host, reached over the run's ssh_config.
    fn parent(&self, address: &str) -> StaticHosts {
        let s = &self.settings;
        let host = HostEntry {
            name: s.server.name.clone(),
            address: address.to_string(),
            port: s.server.port,
            user: s.server.user.clone(),
            key: s.server.key.clone(),
            groups: s.server.groups.clone(),
            jump: None,
        };
        let settings = static_hosts::Settings {
            hosts: vec![host],
            wait: s.wait,
            connect_timeout: s.connect_timeout,
            control_persist: s.control_persist,
            cloud_init: s.cloud_init,
            tunnel: s.tunnel.then(|| s.server.name.clone()),
            tools: Vec::new(),
        };
        StaticHosts::new(settings, &self.workspace)
    }

    /// The server as the parent of the lab's VMs (`[provider.libvirt]`), if the lab has any.
    fn vms(&self, address: &str) -> Option<Libvirt> {
        let mut settings = self.settings.vms.clone()?;
        let s = &self.settings.server;
        settings.parent = Some(HostEntry {
            name: s.name.clone(),
            address: address.to_string(),
            port: s.port,
            user: s.user.clone(),
            key: s.key.clone(),
            groups: s.groups.clone(),
            jump: None,
        });
        Some(Libvirt::new(settings, &self.workspace, &self.base_dir))
    }

    fn address(&self, journal: &Journal) -> String {
        let server = self.live_server(journal);
        let address = server.and_then(|r| r.data["address"].as_str());
        address.unwrap_or("0.0.0.0").to_string()
    }

    fn live_server<'a>(&self, journal: &'a Journal) -> Option<&'a Resource> {
        journal
            .state
            .live()
            .find(|r| r.kind == SERVER && r.status == Status::Created)
    }

    /// The create request of one attempt; flavor and image already resolved to ids.
    fn request(
        &self,
        journal: &Journal,
        attempt: u32,
        ids: &(String, String),
    ) -> anyhow::Result<Value> {
        let s = &self.settings.server;
        let state = &journal.state;
        let expires = Utc::now() + self.settings.expire_after;
        let mut metadata = server::tag(&state.lab, &state.run_id, &s.name, attempt, expires);
        for (k, v) in &s.metadata {
            metadata[k] = json!(v);
        }
        let mut body = json!({
            "name": server::name(&state.run_id, &s.name),
            "flavorRef": ids.0, "imageRef": ids.1, "metadata": metadata,
        });
        if !s.networks.is_empty() {
            body["networks"] = json!(
                s.networks
                    .iter()
                    .map(|n| json!({ "uuid": n }))
                    .collect::<Vec<_>>()
            );
        }
        if let Some(key) = &s.key_name {
            body["key_name"] = json!(key);
        }
        if let Some(az) = &s.availability_zone {
            body["availability_zone"] = json!(az);
        }
        if let Some(file) = &s.user_data {
            use base64::Engine;
            let data = std::fs::read(file).map_err(|e| {
                fail(
                    Kind::Usage,
                    format!("cannot read the user data {}: {e}", file.display()),
                )
            })?;
            body["user_data"] = json!(base64::engine::general_purpose::STANDARD.encode(data));
        }
        Ok(body)
    }

    /// Creates servers until one is ACTIVE or the attempts are spent; the ACTIVE one's
    /// record and address.
    fn rent(&self, journal: &mut Journal) -> anyhow::Result<(String, String)> {
        let compute = Compute::open(
            self.cloud(),
            self.region(),
            self.settings.service_name.as_deref(),
            self.settings.api_timeout,
        )?;
        let nova = compute.nova();
        let s = &self.settings.server;
        let ids = (
            nova.resolve("flavors", &s.flavor)?,
            nova.resolve("images", &s.image)?,
        );
        let attempts = self.settings.attempts;
        for attempt in 1..=attempts {
            let why = match self.attempt(journal, &compute, attempt, &ids)? {
                Ok(done) => return Ok(done),
                Err(why) => why,
            };
            let retry = server::retryable(&why) && attempt < attempts;
            crate::say_err!("!!! server attempt {attempt}/{attempts}: {why}");
            if !retry {
                return Err(fail(
                    Kind::Infra,
                    format!("no server for `{}`: {why}", s.name),
                ));
            }
            crate::signals::sleep(self.settings.retry_delay)?;
        }
        unreachable!("the last attempt returns")
    }

    /// One server: journaled, created, waited for; deleted again when it failed.
    fn attempt(
        &self,
        journal: &mut Journal,
        compute: &Compute,
        attempt: u32,
        ids: &(String, String),
    ) -> anyhow::Result<Result<(String, String), String>> {
        let nova = compute.nova();
        let body = self.request(journal, attempt, ids)?;
        let name = body["name"].as_str().unwrap_or_default().to_string();
        let data = json!({
            "cloud": self.cloud().unwrap_or("env"), "region": compute.region,
            "compute": compute.url, "server_name": name, "run": journal.state.run_id,
            "role": self.settings.server.name, "attempt": attempt, "id": null,
        });
        let role = self.settings.server.name.clone();
        let rid = journal.begin_resource(KIND, SERVER, &role, Layer::Host, None, data)?;
        crate::say!("--- server {name} (attempt {attempt}) in {}", compute.url);
        let id = match nova.create(&body) {
            Ok(Ok(id)) => id,
            Ok(Err(refusal)) => return self.refused(journal, compute, &rid, attempt, refusal),
            // Nova may have made it: the sweep of this attempt's tag deletes what it made.
            Err(e) if crate::openstack::session::unanswered(&e) => {
                let refusal = Refusal::Transient(format!("{e:#}"));
                return self.refused(journal, compute, &rid, attempt, refusal);
            }
            Err(e) => return Err(e),
        };
        journal.set_data(&rid, "id", json!(id))?;
        match server::wait_active(&nova, &id, self.settings.active_wait)? {
            Built::Active(found) => {
                let address = found.address(
                    self.settings.server.network.as_deref(),
                    self.settings.server.ip_version,
                );
                let Some(address) = address.filter(|a| a.parse::<IpAddr>().is_ok()) else {
                    self.keep_evidence(journal, compute, &id, &name, None);
                    return Ok(Err(format!(
                        "server {name} is ACTIVE but has no IPv{} address on {}",
                        self.settings.server.ip_version,
                        self.settings
                            .server
                            .network
                            .as_deref()
                            .unwrap_or("any network")
                    )));
                };
                journal.set_data(&rid, "address", json!(address))?;
                journal.set_status(&rid, Status::Created)?;
                crate::say!("--- server {name} ({id}) ACTIVE at {address}");
                Ok(Ok((rid, address)))
            }
            Built::Failed { server, why } => {
                self.keep_evidence(journal, compute, &id, &name, server.and_then(|s| s.fault));
                crate::say!("    deleting server {name} ({id}) before anything else");
                server::delete(&nova, &id, self.settings.delete_wait)?;
                journal.set_status(&rid, Status::Destroyed)?;
                Ok(Err(why))
            }
        }
    }

    /// Nova refused the create: quota and bad requests stop the step; for other refusals a
    /// server may exist all the same, so this attempt's tag is looked for and deleted.
    fn refused(
        &self,
        journal: &mut Journal,
        compute: &Compute,
        rid: &str,
        attempt: u32,
        refusal: Refusal,
    ) -> anyhow::Result<Result<(String, String), String>> {
        if let Refusal::Transient(_) = refusal {
            self.sweep(journal, compute, Some(attempt))?;
        }
        journal.set_status(rid, Status::Destroyed)?;
        match refusal {
            Refusal::Quota(m) => Err(fail(
                Kind::Infra,
                format!("Nova refused the server (over quota): {m}"),
            )),
            Refusal::Bad(m) => Err(fail(
                Kind::Infra,
                format!("Nova refused the server request: {m}"),
            )),
            Refusal::Transient(m) => Ok(Err(format!("Nova refused the server: {m}"))),
        }
    }

    /// Deletes every server tagged with this run and role (and attempt, when given).
    fn sweep(
        &self,
        journal: &Journal,
        compute: &Compute,
        attempt: Option<u32>,
    ) -> anyhow::Result<()> {
        let nova = compute.nova();
        let role = Some(self.settings.server.name.as_str());
        for found in nova.list()? {
            if server::tagged(&found, &journal.state.run_id, role, attempt) {
                server::delete(&nova, &found.id, self.settings.delete_wait)?;
            }
        }
        Ok(())
    }

    /// The fault and the console of a failed server, with the step's logs.
    fn keep_evidence(
        &self,
        journal: &Journal,
        compute: &Compute,
        id: &str,
        name: &str,
        fault: Option<String>,
    ) {
        let logs = self.workspace.join("logs").join(&journal.state.run_id);
        server::keep_evidence(&logs.join("openstack"), compute, id, name, fault);
    }

    fn host(&self, address: &str) -> Host {
        let s = &self.settings.server;
        Host {
            name: s.name.clone(),
            address: address.to_string(),
            port: s.port,
            groups: s.groups.clone(),
            connection: "ssh".into(),
            user: Some(s.user.clone()),
            ports: Default::default(),
        }
    }

    /// Destroys a server record: by id, or (no id journaled: rollci was killed before Nova
    /// answered) every server carrying that attempt's tag.
    fn destroy_server(&self, resource: &Resource) -> anyhow::Result<Destroyed> {
        let compute = Compute::reopen(&resource.data, self.settings.api_timeout)?;
        let nova = compute.nova();
        let ids: Vec<String> = match resource.data["id"].as_str() {
            Some(id) => vec![id.to_string()],
            None => {
                let run = resource.data["run"].as_str().unwrap_or_default();
                let attempt = resource.data["attempt"].as_u64().map(|a| a as u32);
                let found = nova.list()?.into_iter();
                found
                    .filter(|s| server::tagged(s, run, Some(&resource.name), attempt))
                    .map(|s| s.id)
                    .collect()
            }
        };
        let mut outcome = Destroyed::AlreadyGone;
        for id in ids {
            // The run is over even if this delete fails: `rollci strays` may take it.
            let _ = compute.session.send(
                reqwest::Method::PUT,
                &format!("{}/servers/{id}/metadata/{TAG_DONE}", compute.url),
                Some(&json!({ "meta": { TAG_DONE: Utc::now().to_rfc3339() } })),
            );
            if server::delete(&nova, &id, self.settings.delete_wait)? == Destroyed::Now {
                outcome = Destroyed::Now;
            }
        }
        Ok(outcome)
    }
}

impl Owner for OpenStack {
    fn name(&self) -> &'static str {
        KIND
    }

    fn owns(&self, owner: &str) -> bool {
        owner == KIND
            || owner == static_hosts::KIND
            || (owner == libvirt::KIND && self.settings.vms.is_some())
    }

    fn destroy(&self, resource: &Resource) -> anyhow::Result<Destroyed> {
        match (resource.owner.as_str(), resource.kind.as_str()) {
            (static_hosts::KIND, _) => self.parent("0.0.0.0").destroy(resource),
            (libvirt::KIND, _) => match self.vms("0.0.0.0") {
                Some(vms) => vms.destroy(resource),
                None => anyhow::bail!(
                    "this lab has no `[provider.libvirt]` for `{}`",
                    resource.name
                ),
            },
            (_, SERVER) => self.destroy_server(resource),
            (_, other) => anyhow::bail!("the openstack provider has no resource kind `{other}`"),
        }
    }
}

impl Provider for OpenStack {
    fn acquire(&self, journal: &mut Journal) -> anyhow::Result<()> {
        let address = match self.live_server(journal) {
            Some(r) => r.data["address"].as_str().unwrap_or_default().to_string(),
            None => self.rent(journal)?.1,
        };
        journal.state.hosts = vec![self.host(&address)];
        journal.save()?;
        match self.settings.reach {
            Reach::Ssh => self.parent(&address).acquire(journal),
            Reach::None => Ok(()),
        }
    }

    fn reaches_hosts(&self) -> bool {
        self.settings.reach == Reach::Ssh
    }

    /// The VMs on the server, when the lab has `[provider.libvirt]`.
    fn build(&self, journal: &mut Journal) -> anyhow::Result<()> {
        match self.vms(&self.address(journal)) {
            Some(vms) => vms.build(journal),
            None => Ok(()),
        }
    }

    fn reconcile(&self, _journal: &mut Journal) -> anyhow::Result<()> {
        Ok(())
    }

    /// Servers of this run the journal does not hold (their create was answered after
    /// rollci was killed) are found by their tag, in the journaled cloud and region.
    fn find_strays(&self, journal: &mut Journal) -> anyhow::Result<()> {
        self.parent("0.0.0.0").find_strays(journal)?;
        if let Some(vms) = self.vms(&self.address(journal))
            && self.live_server(journal).is_some()
        {
            vms.find_strays(journal)?;
        }
        let Some(record) = journal
            .state
            .resources
            .iter()
            .rev()
            .find(|r| r.kind == SERVER)
        else {
            return Ok(());
        };
        let data = record.data.clone();
        let compute = Compute::reopen(&data, self.settings.api_timeout)?;
        let run = journal.state.run_id.clone();
        for found in compute.nova().list()? {
            let attempt = found
                .metadata
                .get(server::TAG_ATTEMPT)
                .and_then(Value::as_str);
            let known = journal.state.resources.iter().any(|r| {
                r.kind == SERVER
                    && (r.data["id"] == found.id.as_str()
                        // A record without id: its own destroy looks for its attempt's tag.
                        || (r.data["id"].is_null()
                            && r.status != Status::Destroyed
                            && attempt.is_some_and(|a| a.parse().ok() == r.data["attempt"].as_u64())))
            });
            if server::tagged(&found, &run, None, None) && !known {
                let mut data = data.clone();
                data["id"] = json!(found.id);
                data["server_name"] = json!(found.name);
                let role = self.settings.server.name.clone();
                let id = journal.begin_resource(KIND, SERVER, &role, Layer::Host, None, data)?;
                journal.set_status(&id, Status::Created)?;
            }
        }
        Ok(())
    }

    fn socks(&self, journal: &Journal) -> Option<String> {
        let address = self.live_server(journal)?.data["address"]
            .as_str()?
            .to_string();
        self.parent(&address).socks(journal)
    }

    fn vars(&self) -> serde_json::Map<String, Value> {
        let mut vars = self.parent("0.0.0.0").vars();
        vars.extend(self.vms("0.0.0.0").map(|v| v.vars()).unwrap_or_default());
        // A folder of the workspace for what the lab's playbooks keep (e.g. VMs' keys).
        vars.insert("rollci_lab_dir".into(), json!(self.workspace.join("lab")));
        vars.insert("rollci_region".into(), json!(self.region()));
        vars
    }

    fn tool_env(&self) -> Vec<(String, String)> {
        self.parent("0.0.0.0").tool_env()
    }

    fn tools(&self) -> Vec<Tool> {
        let mut tools = vec![Tool::new("ssh", "reaching the rented server")];
        let listed = self.settings.tools.iter();
        tools.extend(listed.map(|t| Tool::new(t, "listed in [provider] tools")));
        tools
    }

    fn diagnose(&self) -> Vec<Finding> {
        vec![
            match crate::openstack::clouds::load(self.cloud(), &crate::openstack::clouds::env_var) {
                Ok(cloud) => Finding::ok(
                    "cloud",
                    format!("{} ({}, {})", cloud.name, cloud.auth_url, cloud.source),
                ),
                Err(e) => Finding::missing("cloud", format!("{e:#}")),
            },
        ]
    }
}
