//! A blocking Keystone session: one token (v3 password or application credential, v2.0
//! password or Rackspace API key) with its catalog, renewed before it expires and once when
//! a service answers 401; every request to a service goes through it.

use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use reqwest::Method as Http;
use reqwest::blocking::Client;
use reqwest::header::HeaderValue;
use serde_json::{Value, json};

use super::catalog::Catalog;
use super::clouds::{Cloud, Method, Version};
use crate::exit::{Kind, fail};
use crate::secret::Secret;

/// A token is renewed when less than this is left of it.
const RENEW_BEFORE: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

struct Token {
    value: Secret,
    expires: Option<DateTime<Utc>>,
    catalog: Catalog,
}

/// An answer of a service: status and body (JSON when it parses, else `Value::String`).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Answer {
    /// The message of an OpenStack error body (`{"itemNotFound": {"message": …}}`,
    /// `{"error": {"message": …}}`), else an excerpt of the text.
    pub fn message(&self) -> String {
        let inner = self.body.as_object().and_then(|o| o.values().next());
        if let Some(m) = inner.and_then(|v| v.get("message")).and_then(Value::as_str) {
            return m.to_string();
        }
        let text = match &self.body {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        text.chars().take(300).collect()
    }
}

/// A request that got no answer (timed out, or no connection): the service may have carried
/// it out all the same, so a create is followed by a look for what it made.
#[derive(Debug)]
pub struct Unanswered;

impl std::fmt::Display for Unanswered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("no answer in time (the request may have been carried out)")
    }
}

/// Whether `err` is a request that got no answer.
pub fn unanswered(err: &anyhow::Error) -> bool {
    err.downcast_ref::<Unanswered>().is_some()
}

pub struct Session {
    pub cloud: Cloud,
    client: Client,
    token: Mutex<Token>,
}

impl Session {
    /// Authenticates now, so a wrong password or URL fails the step at its start.
    pub fn open(cloud: Cloud, timeout: Duration) -> anyhow::Result<Session> {
        Session::with(cloud, timeout, None)
    }

    /// A session with the lab's own cloud (the system under test), whose API may be
    /// reachable only through the lab's SOCKS tunnel: through it when there is one.
    pub fn open_in_lab(cloud: Cloud, timeout: Duration) -> anyhow::Result<Session> {
        Session::with(cloud, timeout, crate::route::socks())
    }

    fn with(cloud: Cloud, timeout: Duration, socks: Option<String>) -> anyhow::Result<Session> {
        let mut builder = Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("rollci/", env!("CARGO_PKG_VERSION")));
        if let Some(address) = socks {
            let proxy = reqwest::Proxy::all(format!("socks5h://{address}"))
                .context("the lab's SOCKS tunnel address")?;
            builder = builder.no_proxy().proxy(proxy);
        }
        let client = builder.build().context("failed to build the HTTP client")?;
        let token = issue(&client, &cloud)?;
        Ok(Session {
            cloud,
            client,
            token: Mutex::new(token),
        })
    }

    /// The URL of a service for this cloud's interface in `region`, or the cloud's
    /// `<type>_endpoint_override`.
    pub fn endpoint(
        &self,
        kind: &str,
        region: Option<&str>,
        name: Option<&str>,
    ) -> anyhow::Result<String> {
        if let Some(url) = self.cloud.endpoint_overrides.get(kind) {
            return Ok(url.clone());
        }
        let name = name.or(self.cloud.service_names.get(kind).map(String::as_str));
        let token = self.token.lock().expect("token lock");
        token
            .catalog
            .url(kind, &self.cloud.interface, region, name)
            .map_err(|e| fail(Kind::Usage, format!("cloud `{}`: {e}", self.cloud.name)))
    }

    /// The regions the catalog lists for a service type.
    pub fn regions(&self, kind: &str) -> Vec<String> {
        self.token.lock().expect("token lock").catalog.regions(kind)
    }

    /// Sends a request with the token (renewed first when it is about to expire, and once
    /// more when the service answers 401).
    pub fn send(&self, method: Http, url: &str, body: Option<&Value>) -> anyhow::Result<Answer> {
        let mut answer = self.send_once(method.clone(), url, body)?;
        if answer.status == 401 {
            self.renew()?;
            answer = self.send_once(method, url, body)?;
        }
        Ok(answer)
    }

    fn send_once(&self, method: Http, url: &str, body: Option<&Value>) -> anyhow::Result<Answer> {
        let mut header = HeaderValue::from_str(self.current()?.expose())
            .context("Keystone issued a token that is not a valid header value")?;
        header.set_sensitive(true);
        let mut request = self
            .client
            .request(method.clone(), url)
            .header("X-Auth-Token", header)
            .header("Accept", "application/json");
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().map_err(|e| {
            let unanswered = e.is_timeout() || e.is_connect();
            let e = anyhow::Error::new(e.without_url()).context(format!("`{method} {url}` failed"));
            let e = fail(Kind::Infra, format!("{e:#}"));
            if unanswered { e.context(Unanswered) } else { e }
        })?;
        let status = response.status().as_u16();
        let text = response.text().unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok(Answer { status, body })
    }

    /// The current token (renewed first when it is about to expire).
    pub fn token(&self) -> anyhow::Result<Secret> {
        self.current()
    }

    fn current(&self) -> anyhow::Result<Secret> {
        let mut token = self.token.lock().expect("token lock");
        if token.expires.is_some_and(|e| e - Utc::now() < RENEW_BEFORE) {
            *token = issue(&self.client, &self.cloud)?;
        }
        Ok(token.value.clone())
    }

    fn renew(&self) -> anyhow::Result<()> {
        let fresh = issue(&self.client, &self.cloud)?;
        *self.token.lock().expect("token lock") = fresh;
        Ok(())
    }

    /// When the current token expires (for tests and `doctor`).
    pub fn expires(&self) -> Option<DateTime<Utc>> {
        self.token.lock().expect("token lock").expires
    }
}

/// Asks Keystone for a token; a refusal names the cloud and the status, never the secret.
fn issue(client: &Client, cloud: &Cloud) -> anyhow::Result<Token> {
    let (url, body) = match cloud.version {
        Version::V3 => (format!("{}/auth/tokens", cloud.auth_url), v3_body(cloud)),
        Version::V2 => (format!("{}/tokens", cloud.auth_url), v2_body(cloud)),
    };
    let response = client
        .post(&url)
        .json(&body)
        .send()
        .map_err(|e| anyhow::Error::new(e.without_url()))
        .with_context(|| format!("the token request to {url} failed"))
        .map_err(|e| fail(Kind::Infra, format!("cloud `{}`: {e:#}", cloud.name)))?;
    let status = response.status().as_u16();
    let subject = response
        .headers()
        .get("x-subject-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let text = response.text().unwrap_or_default();
    let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    if !(200..300).contains(&status) {
        let answer = Answer { status, body: json };
        let kind = if status == 401 {
            Kind::Usage
        } else {
            Kind::Infra
        };
        return Err(fail(
            kind,
            format!(
                "cloud `{}` ({}): Keystone refused a token at {url}: status {status}: {}",
                cloud.name,
                cloud.source,
                answer.message()
            ),
        ));
    }
    let token = match cloud.version {
        Version::V3 => subject.map(|value| Token {
            value: Secret::new(value),
            expires: time(&json["token"]["expires_at"]),
            catalog: Catalog::from_v3(&json["token"]["catalog"]),
        }),
        Version::V2 => json["access"]["token"]["id"].as_str().map(|value| Token {
            value: Secret::new(value),
            expires: time(&json["access"]["token"]["expires"]),
            catalog: Catalog::from_v2(&json["access"]["serviceCatalog"]),
        }),
    };
    token.ok_or_else(|| {
        fail(
            Kind::Infra,
            format!("Keystone at {url} answered {status} without a token"),
        )
    })
}

fn time(v: &Value) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(v.as_str()?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn v3_scope(cloud: &Cloud) -> Option<Value> {
    match (&cloud.project_id, &cloud.project_name) {
        (Some(id), _) => Some(json!({ "project": { "id": id } })),
        (None, Some(name)) => Some(json!({ "project": {
            "name": name, "domain": { "name": cloud.project_domain },
        }})),
        (None, None) => None,
    }
}

fn v3_body(cloud: &Cloud) -> Value {
    let identity = match &cloud.method {
        Method::Password {
            username,
            user_id,
            password,
            user_domain,
        } => {
            let user = match user_id {
                Some(id) => json!({ "id": id, "password": password.expose() }),
                None => json!({
                    "name": username, "domain": { "name": user_domain },
                    "password": password.expose(),
                }),
            };
            json!({ "methods": ["password"], "password": { "user": user } })
        }
        Method::AppCredential {
            id,
            name,
            username,
            user_domain,
            secret,
        } => {
            let credential = match id {
                Some(id) => json!({ "id": id, "secret": secret.expose() }),
                None => json!({
                    "name": name, "secret": secret.expose(),
                    "user": { "name": username, "domain": { "name": user_domain } },
                }),
            };
            json!({ "methods": ["application_credential"], "application_credential": credential })
        }
        // Refused when the cloud is loaded (API keys are v2.0 only).
        Method::ApiKey { .. } => json!({}),
    };
    let mut auth = json!({ "identity": identity });
    // An application credential carries its own scope.
    if !matches!(cloud.method, Method::AppCredential { .. })
        && let Some(scope) = v3_scope(cloud)
    {
        auth["scope"] = scope;
    }
    json!({ "auth": auth })
}

fn v2_body(cloud: &Cloud) -> Value {
    let mut auth = match &cloud.method {
        Method::ApiKey { username, api_key } => json!({
            "RAX-KSKEY:apiKeyCredentials": { "username": username, "apiKey": api_key.expose() },
        }),
        Method::Password {
            username, password, ..
        } => json!({
            "passwordCredentials": { "username": username, "password": password.expose() },
        }),
        Method::AppCredential { .. } => json!({}),
    };
    if let Some(id) = &cloud.project_id {
        auth["tenantId"] = json!(id);
    } else if let Some(name) = &cloud.project_name {
        auth["tenantName"] = json!(name);
    }
    json!({ "auth": auth })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openstack::clouds::from_env;

    fn cloud(pairs: &[(&str, &str)]) -> Cloud {
        let map: std::collections::BTreeMap<&str, &str> = pairs.iter().copied().collect();
        from_env(&|k| map.get(k).map(|v| v.to_string())).unwrap()
    }

    #[test]
    fn the_request_bodies_of_each_method() {
        let v3 = cloud(&[
            ("OS_AUTH_URL", "http://k/v3"),
            ("OS_USERNAME", "ci"),
            ("OS_PASSWORD", "pw"),
            ("OS_PROJECT_NAME", "lab"),
        ]);
        let body = v3_body(&v3);
        assert_eq!(body["auth"]["identity"]["password"]["user"]["name"], "ci");
        assert_eq!(body["auth"]["scope"]["project"]["name"], "lab");
        let app = cloud(&[
            ("OS_AUTH_URL", "http://k/v3"),
            ("OS_AUTH_TYPE", "v3applicationcredential"),
            ("OS_APPLICATION_CREDENTIAL_ID", "a1"),
            ("OS_APPLICATION_CREDENTIAL_SECRET", "s"),
            ("OS_PROJECT_NAME", "ignored"),
        ]);
        let body = v3_body(&app);
        assert_eq!(
            body["auth"]["identity"]["application_credential"]["id"],
            "a1"
        );
        assert!(body["auth"].get("scope").is_none(), "{body}");
        let rax = cloud(&[
            ("OS_AUTH_URL", "http://k/v2.0"),
            ("OS_AUTH_TYPE", "rackspace_apikey"),
            ("OS_USERNAME", "u"),
            ("OS_API_KEY", "key"),
        ]);
        let body = v2_body(&rax);
        assert_eq!(body["auth"]["RAX-KSKEY:apiKeyCredentials"]["apiKey"], "key");
        let v2 = cloud(&[
            ("OS_AUTH_URL", "http://k/v2.0"),
            ("OS_USERNAME", "u"),
            ("OS_PASSWORD", "pw"),
            ("OS_TENANT_NAME", "t"),
        ]);
        let body = v2_body(&v2);
        assert_eq!(body["auth"]["passwordCredentials"]["password"], "pw");
        assert_eq!(body["auth"]["tenantName"], "t");
    }

    /// A v2.0 Keystone (tokens in the body) whose tokens live `life` seconds, and a service
    /// on the same port that answers 401 to the token `t1` when `revoke_first` is set.
    fn keystone(life: i64, revoke_first: bool) -> crate::testing::Server {
        let issued = std::sync::atomic::AtomicUsize::new(0);
        crate::testing::Server::start(move |raw| {
            if raw.starts_with("POST /v2.0/tokens") {
                let n = issued.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                let expires = (Utc::now() + chrono::TimeDelta::seconds(life)).to_rfc3339();
                let body = json!({"access": {"token": {"id": format!("t{n}"), "expires": expires},
                    "serviceCatalog": []}});
                return (200, body.to_string());
            }
            let stale = raw.to_ascii_lowercase().contains("x-auth-token: t1\r\n");
            match revoke_first && stale {
                true => (401, "{}".into()),
                false => (200, "{\"ok\": true}".into()),
            }
        })
    }

    fn token_requests(server: &crate::testing::Server) -> usize {
        let seen = server.requests.lock().unwrap();
        seen.iter()
            .filter(|r| r.starts_with("POST /v2.0/tokens"))
            .count()
    }

    fn session(server: &crate::testing::Server) -> Session {
        let url = format!("http://{}/v2.0", server.addr);
        let cloud = cloud(&[
            ("OS_AUTH_URL", &url),
            ("OS_USERNAME", "u"),
            ("OS_PASSWORD", "p"),
        ]);
        Session::open(cloud, Duration::from_secs(5)).unwrap()
    }

    #[test]
    fn a_token_is_renewed_before_it_expires() {
        // Five minutes and two seconds of life: fine at once, inside the margin soon after.
        let server = keystone(302, false);
        let session = session(&server);
        let service = format!("http://{}/servers", server.addr);
        assert_eq!(session.send(Http::GET, &service, None).unwrap().status, 200);
        assert_eq!(token_requests(&server), 1);
        std::thread::sleep(Duration::from_millis(2500));
        assert_eq!(session.send(Http::GET, &service, None).unwrap().status, 200);
        assert_eq!(
            token_requests(&server),
            2,
            "renewed inside the last five minutes"
        );
        let seen = server.requests.lock().unwrap();
        assert!(
            seen.last()
                .unwrap()
                .to_ascii_lowercase()
                .contains("x-auth-token: t2")
        );
    }

    #[test]
    fn a_401_renews_the_token_once_and_sends_again() {
        let server = keystone(3600, true);
        let session = session(&server);
        let service = format!("http://{}/servers", server.addr);
        assert_eq!(session.send(Http::GET, &service, None).unwrap().status, 200);
        assert_eq!(token_requests(&server), 2);
    }

    #[test]
    fn error_messages_come_from_the_openstack_error_body() {
        let a = Answer {
            status: 404,
            body: json!({"itemNotFound": {"code": 404, "message": "Instance x could not be found."}}),
        };
        assert_eq!(a.message(), "Instance x could not be found.");
        let a = Answer {
            status: 500,
            body: Value::String("<html>boom</html>".into()),
        };
        assert_eq!(a.message(), "<html>boom</html>");
    }
}
