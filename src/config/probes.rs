//! The lab file's checks of the system under test: `[[probes]]`, `[probing]` and
//! `[[persistent]]`, all built on one HTTP request type.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

/// `[[probes]]`: one availability probe (a service).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeConfig {
    pub name: String,
    /// `http` (one request), `cycle` (a sequence that must all succeed) or `tcp` (a
    /// connection to `url = "tcp://{host}"`, and its first bytes when `banner` is set).
    #[serde(default)]
    pub kind: ProbeKind,
    /// `http` probes: the URL (see [`RequestConfig`] for the other request keys).
    pub url: Option<String>,
    #[serde(default = "default_method")]
    pub method: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub body: Option<String>,
    #[serde(default)]
    pub expect_status: Vec<u16>,
    pub body_contains: Option<String>,
    /// The requests of a `cycle` probe, in order.
    #[serde(default)]
    pub steps: Vec<RequestConfig>,
    /// Probe interval (down to 50ms).
    #[serde(default = "default_interval", with = "humantime_serde")]
    pub interval: Duration,
    /// Per-request timeout.
    #[serde(default = "default_probe_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Downtime budget; above it the upgrade fails its check (exit 1).
    #[serde(default, with = "humantime_serde")]
    pub max_downtime: Option<Duration>,
    /// One probe per host (named `name@host`, `{host}` in URLs is its address:port).
    #[serde(default)]
    pub hosts: Vec<String>,
    /// `"openstack"`: send a Keystone token (from the `OS_*` variables), renewed on 401.
    pub auth: Option<ProbeAuth>,
    /// `tcp` probes: text the server's first bytes must contain (e.g. `"SSH-2.0"`).
    pub banner: Option<String>,
    /// `http` and `cycle` probes: how connections are used. `keep-alive` (the default) is
    /// what clients do (keystoneauth, openstacksdk, the services' own clients): a small pool
    /// of connections reused from probe to probe. `new` opens one per request.
    pub connection: Option<Connection>,
    /// `command` probes: the argv of a long-running client (relative paths from the lab
    /// file's folder) that answers one JSON line per probe (see `checks/probe/command.rs`).
    #[serde(default)]
    pub command: Vec<String>,
}

impl ProbeConfig {
    /// The requests one probe makes, in order.
    pub fn requests(&self) -> Vec<RequestConfig> {
        match (self.kind, &self.url) {
            (ProbeKind::Cycle, _) => self.steps.clone(),
            (ProbeKind::Http, Some(url)) => vec![RequestConfig {
                url: url.clone(),
                method: self.method.clone(),
                headers: self.headers.clone(),
                body: self.body.clone(),
                expect_status: self.expect_status.clone(),
                body_contains: self.body_contains.clone(),
                capture: None,
                capture_header: None,
            }],
            (ProbeKind::Tcp, Some(url)) => vec![RequestConfig {
                body_contains: self.banner.clone(),
                ..RequestConfig::get(url.clone())
            }],
            (ProbeKind::Http | ProbeKind::Tcp, None) | (ProbeKind::Command, _) => Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProbeAuth {
    Openstack,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProbeKind {
    #[default]
    Http,
    Cycle,
    /// A data-plane endpoint (a workload VM's ssh port): connect, optionally read a banner.
    Tcp,
    /// A real client (openstacksdk, a CLI) kept running beside the upgrade: each probe is
    /// one round of its calls, answered on its stdout.
    Command,
}

/// How an HTTP probe uses connections.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Connection {
    /// Kept alive and reused, as requests/keystoneauth do.
    #[default]
    KeepAlive,
    /// A new connection for every request.
    New,
}

impl Connection {
    pub fn as_str(self) -> &'static str {
        match self {
            Connection::KeepAlive => "keep-alive",
            Connection::New => "new",
        }
    }
}

/// One HTTP request. URLs may name hosts as `{lb}`, `{node1}` (address:port), `{host}` for
/// per-host probes, and values captured by an earlier cycle step as `{name}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestConfig {
    pub url: String,
    #[serde(default = "default_method")]
    pub method: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub body: Option<String>,
    /// Accepted statuses (default: any 2xx).
    #[serde(default)]
    pub expect_status: Vec<u16>,
    /// Text the response body must contain.
    pub body_contains: Option<String>,
    /// Cycle steps: a top-level JSON field of the response to use as `{field}` later.
    pub capture: Option<String>,
    /// Cycle steps: a response header to use as `{Header-Name}` later (Keystone answers a
    /// token issue with `X-Subject-Token`).
    pub capture_header: Option<String>,
}

impl RequestConfig {
    /// A plain `GET` of `url` that expects the default statuses.
    pub fn get(url: impl Into<String>) -> Self {
        RequestConfig {
            url: url.into(),
            method: default_method(),
            headers: BTreeMap::new(),
            body: None,
            expect_status: vec![],
            body_contains: None,
            capture: None,
            capture_header: None,
        }
    }
}

/// `[probing]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Probing {
    /// How long to probe before the first upgrade action (the latency baseline).
    #[serde(default = "default_baseline", with = "humantime_serde")]
    pub baseline: Duration,
}

impl Default for Probing {
    fn default() -> Self {
        Probing {
            baseline: default_baseline(),
        }
    }
}

/// `[[persistent]]`: a resource created through the system's API before the upgrade.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersistentConfig {
    pub name: String,
    pub create: RequestConfig,
    /// Reads it back; its body (or `json_pointer` into it) is checksummed.
    pub read: RequestConfig,
    pub delete: RequestConfig,
    /// RFC 6901 pointer of the part of the read body that must not change (e.g. `/content`).
    pub json_pointer: Option<String>,
    /// `"openstack"`: every request carries a Keystone token (from the `OS_*` variables, the
    /// lab's own cloud), create, read and the delete at cleanup alike.
    pub auth: Option<ProbeAuth>,
    /// Values of the create's answer (name → RFC 6901 pointer, e.g. `id = "/project/id"`),
    /// usable as `{name}` in `read` and `delete`; journaled, so cleanup can delete it.
    #[serde(default)]
    pub capture: BTreeMap<String, String>,
}

fn default_interval() -> Duration {
    Duration::from_millis(200)
}
fn default_probe_timeout() -> Duration {
    Duration::from_secs(2)
}
fn default_baseline() -> Duration {
    Duration::from_secs(2)
}
fn default_method() -> String {
    "GET".into()
}
