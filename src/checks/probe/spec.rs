//! What to probe: each configured probe made concrete, one [`Spec`] per service (and per
//! host for per-host probes), with the hosts' addresses filled in.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use super::command::ClientCommand;
use super::request::expand;
use crate::config::{Connection, ProbeAuth, ProbeConfig, ProbeKind, RequestConfig};
use crate::exit::{Kind, fail};
use crate::openstack::keystone::{Keystone, Tokens};

/// The label of probes taken before the first upgrade action.
pub const BASELINE: &str = "baseline";

/// One concrete probe: a service name and the requests it makes.
#[derive(Debug, Clone)]
pub struct Spec {
    pub service: String,
    pub url: String,
    pub requests: Vec<RequestConfig>,
    pub interval: Duration,
    pub timeout: Duration,
    pub budget: Option<Duration>,
    /// The shared OpenStack token source of probes with `auth = "openstack"`.
    pub auth: Option<Arc<Tokens>>,
    /// How an `http` or `cycle` probe uses connections; none for `tcp` and `command`.
    pub connection: Option<Connection>,
    /// A `command` probe's client.
    pub command: Option<ClientCommand>,
}

impl Spec {
    /// A probe of `requests`, with the defaults of everything else.
    pub fn http(service: &str, requests: Vec<RequestConfig>, connection: Connection) -> Spec {
        Spec {
            service: service.to_string(),
            url: requests.first().map(|r| r.url.clone()).unwrap_or_default(),
            requests,
            interval: Duration::from_millis(200),
            timeout: Duration::from_secs(2),
            budget: None,
            auth: None,
            connection: Some(connection),
            command: None,
        }
    }

    /// How it reaches the service, for reports: `keep-alive`, `new` or `command`.
    pub fn connection_label(&self) -> &'static str {
        match (&self.command, self.connection) {
            (Some(_), _) => "command",
            (None, Some(c)) => c.as_str(),
            (None, None) => "new",
        }
    }
}

/// Expands the lab's probes: hosts named in URLs become `address:port`, per-host probes one
/// spec per host.
pub fn specs(
    probes: &[ProbeConfig],
    hosts: &BTreeMap<String, String>,
    base_dir: &std::path::Path,
) -> anyhow::Result<Vec<Spec>> {
    let mut specs = Vec::new();
    let tokens = match probes.iter().any(|p| p.auth == Some(ProbeAuth::Openstack)) {
        true => {
            let keystone = Keystone::from_env().map_err(|e| fail(Kind::Usage, format!("{e:#}")))?;
            Some(Arc::new(Tokens::new(keystone)))
        }
        false => None,
    };
    for probe in probes {
        let targets: Vec<Option<&String>> = if probe.hosts.is_empty() {
            vec![None]
        } else {
            probe.hosts.iter().map(Some).collect()
        };
        for target in targets {
            let mut vars = hosts.clone();
            let mut service = probe.name.clone();
            if let Some(host) = target {
                let address = hosts.get(host).with_context(|| {
                    format!("probe `{}` names unknown host `{host}`", probe.name)
                })?;
                vars.insert("host".into(), address.clone());
                let prefix = format!("{host}:");
                for (key, value) in hosts {
                    if let Some(port) = key.strip_prefix(&prefix) {
                        vars.insert(format!("host:{port}"), value.clone());
                    }
                }
                service = format!("{}@{host}", probe.name);
            }
            let requests = probe
                .requests()
                .into_iter()
                .map(|mut r| {
                    r.url = expand(&r.url, &vars);
                    r
                })
                .collect::<Vec<_>>();
            let command = (probe.kind == ProbeKind::Command).then(|| ClientCommand {
                argv: probe.command.clone(),
                cwd: base_dir.to_path_buf(),
            });
            let url = match &command {
                Some(c) => format!("command: {}", c.argv.join(" ")),
                None => requests.first().map(|r| r.url.clone()).unwrap_or_default(),
            };
            specs.push(Spec {
                service,
                url,
                requests,
                interval: probe.interval,
                timeout: probe.timeout,
                budget: probe.max_downtime,
                auth: tokens.clone().filter(|_| probe.auth.is_some()),
                connection: match probe.kind {
                    ProbeKind::Http | ProbeKind::Cycle => {
                        Some(probe.connection.unwrap_or_default())
                    }
                    ProbeKind::Tcp | ProbeKind::Command => None,
                },
                command,
            });
        }
    }
    Ok(specs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_ports_expand_for_the_lab_and_for_each_host() {
        let probe: ProbeConfig = toml::from_str(
            "name = \"ks\"\nurl = \"http://{host:keystone}/v3 via {lb:keystone}\"\nhosts = [\"node1\"]",
        )
        .unwrap();
        let hosts = BTreeMap::from([
            ("lb".to_string(), "127.0.0.2:80".to_string()),
            ("lb:keystone".to_string(), "127.0.0.2:5000".to_string()),
            ("node1".to_string(), "127.0.0.3:80".to_string()),
            ("node1:keystone".to_string(), "127.0.0.3:5000".to_string()),
        ]);
        let specs = specs(&[probe], &hosts, std::path::Path::new(".")).unwrap();
        assert_eq!(specs[0].service, "ks@node1");
        assert_eq!(specs[0].url, "http://127.0.0.3:5000/v3 via 127.0.0.2:5000");
        assert_eq!(
            specs[0].connection,
            Some(Connection::KeepAlive),
            "the default"
        );
    }
}
