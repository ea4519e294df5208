//! Leaked servers: tagged by rollci, whose run is over (cleanup marked it) or whose expiry
//! has passed. Only a server seen leaked on two passes in a row is deleted (nodepool's
//! leaked-instance cleanup is the model): a run that is just starting, or a clock that is
//! off for a moment, never costs a live lab its host.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use super::server::{self, Compute, TAG_DONE, TAG_EXPIRES, TAG_LAB, TAG_RUN};
use crate::openstack::nova::Server;

/// One leaked server.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Leak {
    pub region: Option<String>,
    pub id: String,
    pub name: String,
    pub lab: String,
    pub run: String,
    /// Why it counts as leaked.
    pub reason: String,
    /// Set after `--delete`: `deleted`, `gone` or the error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
}

/// Why `server` is leaked at `now`, if it is one of rollci's and leaked.
pub fn leaked(server: &Server, now: DateTime<Utc>, lab: Option<&str>) -> Option<String> {
    let meta = |k: &str| server.metadata.get(k).and_then(Value::as_str);
    meta(TAG_RUN)?;
    if lab.is_some_and(|l| meta(TAG_LAB) != Some(l)) {
        return None;
    }
    if let Some(done) = meta(TAG_DONE) {
        return Some(format!("its run was cleaned up at {done}"));
    }
    let expires = DateTime::parse_from_rfc3339(meta(TAG_EXPIRES)?).ok()?;
    (expires < now).then(|| format!("expired at {expires}"))
}

/// The leaked servers of one region.
pub fn scan(compute: &Compute, lab: Option<&str>) -> anyhow::Result<Vec<Leak>> {
    let now = Utc::now();
    let servers = compute.nova().list()?;
    Ok(servers
        .iter()
        .filter_map(|s| {
            let reason = leaked(s, now, lab)?;
            let meta = |k: &str| {
                s.metadata
                    .get(k)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            Some(Leak {
                region: compute.region.clone(),
                id: s.id.clone(),
                name: s.name.clone(),
                lab: meta(TAG_LAB),
                run: meta(TAG_RUN),
                reason,
                outcome: None,
            })
        })
        .collect())
}

/// What `rollci strays` asks for.
pub struct Sweep<'a> {
    pub cloud: Option<&'a str>,
    /// One region; none: every region of the catalog's compute service.
    pub region: Option<&'a str>,
    pub service_name: Option<&'a str>,
    pub lab: Option<&'a str>,
    pub interval: Duration,
    pub delete: bool,
}

const API_TIMEOUT: Duration = Duration::from_secs(60);
const DELETE_WAIT: Duration = Duration::from_secs(600);

/// Runs a sweep over the cloud's regions.
pub fn sweep_cloud(ask: &Sweep) -> anyhow::Result<Vec<Leak>> {
    let regions: Vec<Option<String>> = match ask.region {
        Some(r) => vec![Some(r.to_string())],
        None => {
            let all = Compute::regions(ask.cloud, API_TIMEOUT)?;
            match all.is_empty() {
                true => vec![None],
                false => all.into_iter().map(Some).collect(),
            }
        }
    };
    let mut computes = Vec::new();
    for region in &regions {
        computes.push(Compute::open(
            ask.cloud,
            region.as_deref(),
            ask.service_name,
            API_TIMEOUT,
        )?);
    }
    sweep(&computes, ask.lab, ask.interval, ask.delete, DELETE_WAIT)
}

/// Two passes `interval` apart over every region; with `delete`, removes what both saw.
pub fn sweep(
    computes: &[Compute],
    lab: Option<&str>,
    interval: Duration,
    delete: bool,
    delete_wait: Duration,
) -> anyhow::Result<Vec<Leak>> {
    let mut first = Vec::new();
    for compute in computes {
        first.extend(scan(compute, lab)?);
    }
    if first.is_empty() {
        return Ok(first);
    }
    crate::say_err!(
        "--- {} leaked server(s) on the first pass; looking again in {}",
        first.len(),
        humantime::format_duration(interval)
    );
    crate::signals::sleep(interval)?;
    let mut both = Vec::new();
    for compute in computes {
        let again = scan(compute, lab)?;
        for mut leak in again
            .into_iter()
            .filter(|l| first.iter().any(|f| f.id == l.id))
        {
            if delete {
                leak.outcome = Some(
                    match server::delete(&compute.nova(), &leak.id, delete_wait) {
                        Ok(crate::provider::interface::Destroyed::Now) => "deleted".into(),
                        Ok(crate::provider::interface::Destroyed::AlreadyGone) => "gone".into(),
                        Err(e) => format!("not deleted: {e:#}"),
                    },
                );
            }
            both.push(leak);
        }
    }
    Ok(both)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn server(meta: Value) -> Server {
        Server::with_metadata(&meta)
    }

    #[test]
    fn only_rollci_servers_past_expiry_or_cleaned_up_are_leaked() {
        let now = DateTime::parse_from_rfc3339("2026-12-02T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let live = server(
            json!({"rollci_run": "r", "rollci_lab": "l", "rollci_expires": "2026-12-02T13:00:00Z"}),
        );
        assert_eq!(leaked(&live, now, None), None);
        let old = server(
            json!({"rollci_run": "r", "rollci_lab": "l", "rollci_expires": "2026-12-02T11:00:00Z"}),
        );
        assert!(leaked(&old, now, None).unwrap().starts_with("expired at"));
        assert_eq!(leaked(&old, now, Some("other")), None);
        let done = server(
            json!({"rollci_run": "r", "rollci_expires": "2026-12-03T00:00:00Z", "rollci_done": "x"}),
        );
        assert!(leaked(&done, now, None).unwrap().contains("cleaned up"));
        let foreign = server(json!({"rollci_expires": "2020-01-01T00:00:00Z"}));
        assert_eq!(leaked(&foreign, now, None), None);
    }
}
