//! The few Compute (Nova) calls a provider needs: resolve a flavor and an image, create a
//! server, read it, list servers, delete one, read its console.

use reqwest::Method as Http;
use serde_json::{Value, json};

use super::session::{Answer, Session};
use crate::exit::{Kind, fail};

/// Why Nova refused to create a server, classified for the retry rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Over quota (403 "Quota exceeded", 413 overLimit): retrying cannot help.
    Quota(String),
    /// The request itself is wrong (400, 404): neither can it.
    Bad(String),
    /// Anything else (409, 5xx): worth another attempt.
    Transient(String),
}

impl Refusal {
    pub fn message(&self) -> &str {
        match self {
            Refusal::Quota(m) | Refusal::Bad(m) | Refusal::Transient(m) => m,
        }
    }
}

/// A server as `GET /servers/{id}` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Server {
    pub id: String,
    pub name: String,
    pub status: String,
    pub metadata: serde_json::Map<String, Value>,
    pub addresses: Value,
    pub access_ipv4: Option<String>,
    pub access_ipv6: Option<String>,
    pub fault: Option<String>,
    /// `OS-EXT-STS:task_state` (e.g. `deleting`).
    pub task_state: Option<String>,
}

impl Server {
    fn from_json(v: &Value) -> Option<Server> {
        let text = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        Some(Server {
            id: text("id")?,
            name: text("name").unwrap_or_default(),
            status: text("status").unwrap_or_else(|| "BUILD".into()),
            metadata: v["metadata"].as_object().cloned().unwrap_or_default(),
            addresses: v.get("addresses").cloned().unwrap_or(Value::Null),
            access_ipv4: text("accessIPv4"),
            access_ipv6: text("accessIPv6"),
            fault: v["fault"]["message"].as_str().map(str::to_string),
            task_state: text("OS-EXT-STS:task_state"),
        })
    }

    /// An ACTIVE server with this metadata and nothing else (for tests).
    #[cfg(test)]
    pub fn with_metadata(metadata: &Value) -> Server {
        Server::from_json(
            &json!({"id": "i", "name": "n", "status": "ACTIVE", "metadata": metadata}),
        )
        .expect("an id")
    }

    /// The address to reach it at: on `network` (any network when `None`, the access
    /// address first), of IP version `version`.
    pub fn address(&self, network: Option<&str>, version: u8) -> Option<String> {
        if network.is_none() {
            let access = if version == 6 {
                &self.access_ipv6
            } else {
                &self.access_ipv4
            };
            if access.is_some() {
                return access.clone();
            }
        }
        let nets = self.addresses.as_object()?;
        let mut candidates = nets
            .iter()
            .filter(|(name, _)| network.is_none_or(|n| n == name.as_str()))
            .flat_map(|(_, list)| list.as_array().into_iter().flatten());
        candidates
            .find(|a| a["version"].as_u64() == Some(u64::from(version)))
            .and_then(|a| a["addr"].as_str().map(str::to_string))
    }
}

/// Compute at one endpoint, through a session.
pub struct Nova<'a> {
    pub session: &'a Session,
    pub url: String,
}

impl Nova<'_> {
    fn call(&self, method: Http, path: &str, body: Option<&Value>) -> anyhow::Result<Answer> {
        self.session
            .send(method, &format!("{}{path}", self.url), body)
    }

    /// An id as given, or the id of the flavor (`flavors`) or image (`images`) of that name.
    pub fn resolve(&self, collection: &str, wanted: &str) -> anyhow::Result<String> {
        let answer = self.call(Http::GET, &format!("/{collection}"), None)?;
        if answer.status != 200 {
            return Err(self.refused(&format!("GET /{collection}"), &answer));
        }
        let items = answer.body[collection]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let id_of = |i: &Value| i["id"].as_str().map(str::to_string);
        if let Some(id) = items.iter().filter(|i| i["id"] == wanted).find_map(id_of) {
            return Ok(id);
        }
        let named: Vec<String> = items
            .iter()
            .filter(|i| i["name"] == wanted)
            .filter_map(id_of)
            .collect();
        match named.as_slice() {
            [id] => Ok(id.clone()),
            [] => {
                let names: Vec<&str> = items
                    .iter()
                    .filter_map(|i| i["name"].as_str())
                    .take(20)
                    .collect();
                Err(fail(
                    Kind::Usage,
                    format!(
                        "compute at {} has no {} `{wanted}` (there: {})",
                        self.url,
                        collection.trim_end_matches('s'),
                        names.join(", ")
                    ),
                ))
            }
            _ => Err(fail(
                Kind::Usage,
                format!("several {collection} are named `{wanted}`: give its id"),
            )),
        }
    }

    /// `POST /servers`: the new server's id, or why Nova refused.
    pub fn create(&self, server: &Value) -> anyhow::Result<Result<String, Refusal>> {
        let answer = self.call(Http::POST, "/servers", Some(&json!({ "server": server })))?;
        if answer.status == 202 || answer.status == 200 {
            if let Some(id) = answer.body["server"]["id"].as_str() {
                return Ok(Ok(id.to_string()));
            }
            return Err(fail(
                Kind::Infra,
                "Nova accepted the server but answered no id",
            ));
        }
        let message = format!("status {}: {}", answer.status, answer.message());
        let quota = message.to_ascii_lowercase().contains("quota");
        Ok(Err(match answer.status {
            413 => Refusal::Quota(message),
            403 if quota => Refusal::Quota(message),
            400 | 403 | 404 => Refusal::Bad(message),
            _ => Refusal::Transient(message),
        }))
    }

    /// `GET /servers/{id}`; `None` once it is gone (404).
    pub fn get(&self, id: &str) -> anyhow::Result<Option<Server>> {
        let answer = self.call(Http::GET, &format!("/servers/{id}"), None)?;
        match answer.status {
            200 => Ok(Server::from_json(&answer.body["server"])),
            404 => Ok(None),
            _ => Err(self.refused(&format!("GET /servers/{id}"), &answer)),
        }
    }

    /// `GET /servers/detail`, every page.
    pub fn list(&self) -> anyhow::Result<Vec<Server>> {
        let mut servers = Vec::new();
        let mut path = "/servers/detail?limit=200".to_string();
        loop {
            let answer = self.call(Http::GET, &path, None)?;
            if answer.status != 200 {
                return Err(self.refused("GET /servers/detail", &answer));
            }
            let page: Vec<Server> = answer.body["servers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Server::from_json)
                .collect();
            let next = page.last().map(|s| s.id.clone());
            let more = answer.body["servers_links"]
                .as_array()
                .is_some_and(|l| l.iter().any(|l| l["rel"] == "next"));
            servers.extend(page);
            match (more, next) {
                (true, Some(marker)) => path = format!("/servers/detail?limit=200&marker={marker}"),
                _ => return Ok(servers),
            }
        }
    }

    /// `DELETE /servers/{id}`: `true` when Nova took it, `false` when it is already gone.
    pub fn delete(&self, id: &str) -> anyhow::Result<bool> {
        let answer = self.call(Http::DELETE, &format!("/servers/{id}"), None)?;
        match answer.status {
            200..=299 => Ok(true),
            404 => Ok(false),
            _ => Err(self.refused(&format!("DELETE /servers/{id}"), &answer)),
        }
    }

    /// The server's console output (the last `lines`), or why there is none.
    pub fn console(&self, id: &str, lines: u32) -> anyhow::Result<String> {
        let body = json!({ "os-getConsoleOutput": { "length": lines } });
        let answer = self.call(Http::POST, &format!("/servers/{id}/action"), Some(&body))?;
        match answer.body["output"].as_str() {
            Some(output) if answer.status == 200 => Ok(output.to_string()),
            _ => Err(self.refused("os-getConsoleOutput", &answer)),
        }
    }

    fn refused(&self, what: &str, answer: &Answer) -> anyhow::Error {
        fail(
            Kind::Infra,
            format!(
                "compute at {}: `{what}` answered status {}: {}",
                self.url,
                answer.status,
                answer.message()
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_by_network_and_version() {
        let s = Server::from_json(&json!({
            "id": "x", "status": "ACTIVE",
            "addresses": {
                "private": [{"addr": "10.0.0.5", "version": 4}],
                "public": [{"addr": "2001:db8::5", "version": 6}, {"addr": "203.0.113.5", "version": 4}],
            },
            "accessIPv4": "",
        }))
        .unwrap();
        assert_eq!(s.address(Some("public"), 4).as_deref(), Some("203.0.113.5"));
        assert_eq!(s.address(Some("public"), 6).as_deref(), Some("2001:db8::5"));
        assert_eq!(s.address(Some("private"), 6), None);
        assert_eq!(s.address(None, 6).as_deref(), Some("2001:db8::5"));
        let mut s = s;
        s.access_ipv4 = Some("198.51.100.1".into());
        assert_eq!(s.address(None, 4).as_deref(), Some("198.51.100.1"));
    }

    #[test]
    fn a_server_without_status_is_building_and_a_fault_is_kept() {
        let s = Server::from_json(&json!({"id": "x"})).unwrap();
        assert_eq!(s.status, "BUILD");
        let s = Server::from_json(&json!({"id": "x", "status": "ERROR",
            "fault": {"code": 500, "message": "No valid host was found."}}))
        .unwrap();
        assert_eq!(s.fault.as_deref(), Some("No valid host was found."));
        assert!(Server::from_json(&json!({"name": "no id"})).is_none());
    }
}
