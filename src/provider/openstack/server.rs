//! One Nova server's life: the compute endpoint of a cloud and region, the metadata tag that
//! finds a server again after a crash, the wait for ACTIVE and the delete that waits until
//! the server is gone.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::exit::{Kind, fail};
use crate::openstack::clouds;
use crate::openstack::nova::{Nova, Server};
use crate::openstack::session::Session;
use crate::provider::interface::Destroyed;

/// Metadata keys of rollci's tag.
pub const TAG_RUN: &str = "rollci_run";
pub const TAG_LAB: &str = "rollci_lab";
pub const TAG_ROLE: &str = "rollci_role";
pub const TAG_ATTEMPT: &str = "rollci_attempt";
pub const TAG_EXPIRES: &str = "rollci_expires";
/// Set by cleanup before the delete: the run is over, whatever happens to the delete.
pub const TAG_DONE: &str = "rollci_done";

/// Compute of one cloud in one region, through an authenticated session.
pub struct Compute {
    pub session: Session,
    pub url: String,
    pub region: Option<String>,
}

impl Compute {
    /// Loads the cloud's credentials, authenticates and finds compute in `region` (the
    /// argument, else the cloud's `region_name`); a region the catalog lacks is an error
    /// listing those it has.
    pub fn open(
        cloud: Option<&str>,
        region: Option<&str>,
        service_name: Option<&str>,
        timeout: Duration,
    ) -> anyhow::Result<Compute> {
        let cloud = clouds::load(cloud, &clouds::env_var)?;
        let region = region.map(str::to_string).or(cloud.region.clone());
        let session = Session::open(cloud, timeout)?;
        let url = session.endpoint("compute", region.as_deref(), service_name)?;
        Ok(Compute {
            session,
            url,
            region,
        })
    }

    /// The regions where the cloud's catalog has compute.
    pub fn regions(cloud: Option<&str>, timeout: Duration) -> anyhow::Result<Vec<String>> {
        let session = Session::open(clouds::load(cloud, &clouds::env_var)?, timeout)?;
        Ok(session.regions("compute"))
    }

    /// Compute as a journal record names it (cloud, region, URL), for cleanup.
    pub fn reopen(data: &Value, timeout: Duration) -> anyhow::Result<Compute> {
        let cloud = data["cloud"].as_str().filter(|c| *c != "env");
        let cloud = clouds::load(cloud, &clouds::env_var)?;
        let session = Session::open(cloud, timeout)?;
        let url = data["compute"].as_str().unwrap_or_default().to_string();
        anyhow::ensure!(!url.is_empty(), "the journal record names no compute URL");
        let region = data["region"].as_str().map(str::to_string);
        Ok(Compute {
            session,
            url,
            region,
        })
    }

    pub fn nova(&self) -> Nova<'_> {
        Nova {
            session: &self.session,
            url: self.url.clone(),
        }
    }
}

/// The metadata that tags a server: lab, run, role, attempt and expiry.
pub fn tag(lab: &str, run: &str, role: &str, attempt: u32, expires: DateTime<Utc>) -> Value {
    json!({
        TAG_LAB: lab, TAG_RUN: run, TAG_ROLE: role, TAG_ATTEMPT: attempt.to_string(),
        TAG_EXPIRES: expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    })
}

/// Whether a server carries this run's tag (and this role and attempt, when given).
pub fn tagged(server: &Server, run: &str, role: Option<&str>, attempt: Option<u32>) -> bool {
    let meta = |k: &str| server.metadata.get(k).and_then(Value::as_str);
    meta(TAG_RUN) == Some(run)
        && role.is_none_or(|r| meta(TAG_ROLE) == Some(r))
        && attempt.is_none_or(|a| meta(TAG_ATTEMPT) == Some(a.to_string().as_str()))
}

/// `rollci-<run>-<role>`, lower case (Nova derives the host name from it).
pub fn name(run: &str, role: &str) -> String {
    format!("rollci-{run}-{role}").to_ascii_lowercase()
}

/// How a server's build ended.
pub enum Built {
    Active(Server),
    /// ERROR, or still building at the deadline; `server` is its last view.
    Failed {
        server: Option<Server>,
        why: String,
    },
}

/// Polls with backoff (1 s doubling to 15 s) until the server is ACTIVE, ERROR, gone or
/// late; every change of status is said.
pub fn wait_active(nova: &Nova, id: &str, limit: Duration) -> anyhow::Result<Built> {
    let end = Instant::now() + limit;
    let mut pause = Duration::from_secs(1);
    let mut last = String::new();
    loop {
        crate::signals::check()?;
        let server = match nova.get(id) {
            // One poll that got no answer is not the build's end: poll again.
            Err(e) if crate::openstack::session::unanswered(&e) && Instant::now() < end => {
                crate::say!("    server {id}: {e:#}; asking again");
                crate::signals::sleep(pause)?;
                continue;
            }
            other => other?,
        };
        let Some(server) = server else {
            return Ok(Built::Failed {
                server: None,
                why: format!("server {id} disappeared while it was being built"),
            });
        };
        if server.status != last {
            crate::say!("    server {} ({id}): {}", server.name, server.status);
            last = server.status.clone();
        }
        match server.status.as_str() {
            "ACTIVE" => return Ok(Built::Active(server)),
            "ERROR" => {
                let why = format!(
                    "server {} went to ERROR: {}",
                    server.name,
                    server
                        .fault
                        .as_deref()
                        .unwrap_or("Nova gave no fault message")
                );
                return Ok(Built::Failed {
                    server: Some(server),
                    why,
                });
            }
            _ if Instant::now() >= end => {
                let why = format!(
                    "server {} was still {} after {}",
                    server.name,
                    server.status,
                    humantime::format_duration(limit)
                );
                return Ok(Built::Failed {
                    server: Some(server),
                    why,
                });
            }
            _ => {}
        }
        let left = end.saturating_duration_since(Instant::now());
        crate::signals::sleep(pause.min(left.max(Duration::from_millis(100))))?;
        pause = (pause * 2).min(Duration::from_secs(15));
    }
}

/// Deletes a server and waits until Nova no longer shows it (404 is success); a delete
/// Nova refuses (409 while another task runs, 500) is sent again until `limit`.
pub fn delete(nova: &Nova, id: &str, limit: Duration) -> anyhow::Result<Destroyed> {
    let end = Instant::now() + limit;
    let mut pause = Duration::from_millis(500);
    let mut sent = false;
    loop {
        let _ = crate::signals::check();
        if !sent {
            match nova.delete(id) {
                Ok(true) => sent = true,
                Ok(false) => return Ok(Destroyed::AlreadyGone),
                Err(e) if Instant::now() >= end => return Err(e),
                Err(e) => crate::say_err!("    delete of server {id} refused, again soon: {e:#}"),
            }
        }
        if sent {
            match nova.get(id)? {
                None => return Ok(Destroyed::Now),
                Some(s) if s.status == "DELETED" => return Ok(Destroyed::Now),
                Some(s) if Instant::now() >= end => {
                    return Err(fail(
                        Kind::Infra,
                        format!(
                            "server {id} was still there ({}) {} after its delete",
                            s.status,
                            humantime::format_duration(limit)
                        ),
                    ));
                }
                Some(_) => {}
            }
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_secs(10));
    }
}

/// Writes a failed server's fault and console into `dir` (what Nova can give).
pub fn keep_evidence(
    dir: &std::path::Path,
    compute: &Compute,
    id: &str,
    name: &str,
    fault: Option<String>,
) {
    let console = compute
        .nova()
        .console(id, 200)
        .unwrap_or_else(|e| format!("(no console output: {e:#})\n"));
    let fault = fault.unwrap_or_else(|| "(Nova gave no fault)".into());
    let written = std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(dir.join(format!("{name}.fault.txt")), format!("{fault}\n")))
        .and_then(|()| std::fs::write(dir.join(format!("{name}.console.log")), console));
    match written {
        Ok(()) => crate::say!("    fault and console of {name} kept in {}", dir.display()),
        Err(e) => crate::say_err!("warning: could not keep the console of {name}: {e}"),
    }
}

/// Whether a failed build may be retried: a cloud without room will not have more soon.
pub fn retryable(why: &str) -> bool {
    let why = why.to_ascii_lowercase();
    !(why.contains("no valid host") || why.contains("quota"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_finds_its_run_role_and_attempt() {
        let expires = DateTime::parse_from_rfc3339("2026-12-03T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let meta = tag("lab", "run1", "host", 2, expires);
        assert_eq!(meta[TAG_EXPIRES], "2026-12-03T00:00:00Z");
        let server = Server::with_metadata(&meta);
        assert!(tagged(&server, "run1", Some("host"), Some(2)));
        assert!(tagged(&server, "run1", None, None));
        assert!(!tagged(&server, "run1", Some("host"), Some(1)));
        assert!(!tagged(&server, "run2", None, None));
    }

    #[test]
    fn no_valid_host_and_quota_are_not_retried() {
        assert!(!retryable(
            "server x went to ERROR: No valid host was found. There are not enough hosts"
        ));
        assert!(!retryable("status 403: Quota exceeded for instances"));
        assert!(retryable("server x was still BUILD after 20m"));
    }
}
