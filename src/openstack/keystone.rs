//! OpenStack tokens for probes: a Keystone v3 password-auth token from the `OS_*` variables
//! (the way the OpenStack ecosystem passes credentials; never the lab file), shared by every
//! probe, renewed once when a service answers 401.

use std::fmt;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::Mutex;

use crate::secret::Secret;

/// Keystone credentials read from the environment; the password is never shown.
#[derive(Clone)]
pub struct Keystone {
    pub auth_url: String,
    pub username: String,
    password: Secret,
    pub project: String,
    pub user_domain: String,
    pub project_domain: String,
}

impl fmt::Debug for Keystone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keystone")
            .field("auth_url", &self.auth_url)
            .field("username", &self.username)
            .field("password", &self.password)
            .field("project", &self.project)
            .finish()
    }
}

impl Keystone {
    /// Reads `OS_AUTH_URL`, `OS_USERNAME`, `OS_PASSWORD`, `OS_PROJECT_NAME` and the optional
    /// `OS_USER_DOMAIN_NAME` / `OS_PROJECT_DOMAIN_NAME` (default `Default`); without
    /// `OS_AUTH_URL`, the password cloud `OS_CLOUD` of a `clouds.yaml` (a lab that deploys its
    /// own cloud writes one, read when the probes start).
    pub fn from_env() -> anyhow::Result<Keystone> {
        Self::from_vars(super::clouds::env_var)
    }

    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> anyhow::Result<Keystone> {
        if var("OS_AUTH_URL").is_none() && var("OS_CLOUD").is_some() {
            return Self::from_cloud(&super::clouds::from_os_env(&var)?);
        }
        let need = |k: &str| {
            var(k).ok_or_else(|| {
                anyhow::anyhow!(
                    "probes with `auth = \"openstack\"` need `{k}` in the environment \
                     (hint: source an openrc, or bind the cloud credentials in Jenkins)"
                )
            })
        };
        Ok(Keystone {
            auth_url: need("OS_AUTH_URL")?.trim_end_matches('/').to_string(),
            username: need("OS_USERNAME")?,
            password: Secret::new(need("OS_PASSWORD")?),
            project: need("OS_PROJECT_NAME")?,
            user_domain: var("OS_USER_DOMAIN_NAME").unwrap_or_else(|| "Default".into()),
            project_domain: var("OS_PROJECT_DOMAIN_NAME").unwrap_or_else(|| "Default".into()),
        })
    }

    /// A v3 password cloud of a `clouds.yaml`, scoped to a project by name.
    pub fn from_cloud(cloud: &super::clouds::Cloud) -> anyhow::Result<Keystone> {
        use super::clouds::{Method, Version};
        let (
            Method::Password {
                username,
                password,
                user_domain,
                ..
            },
            Version::V3,
        ) = (&cloud.method, cloud.version)
        else {
            anyhow::bail!(
                "{}: probes with `auth = \"openstack\"` need a v3 password cloud",
                cloud.source
            );
        };
        let project = cloud.project_name.clone().with_context(|| {
            format!(
                "{}: probes with `auth = \"openstack\"` need `project_name`",
                cloud.source
            )
        })?;
        Ok(Keystone {
            auth_url: cloud.auth_url.clone(),
            username: username.clone(),
            password: password.clone(),
            project,
            user_domain: user_domain.clone(),
            project_domain: cloud.project_domain.clone(),
        })
    }

    fn tokens_url(&self) -> String {
        if self.auth_url.ends_with("/v3") {
            format!("{}/auth/tokens", self.auth_url)
        } else {
            format!("{}/v3/auth/tokens", self.auth_url)
        }
    }

    fn request_body(&self) -> serde_json::Value {
        serde_json::json!({ "auth": {
            "identity": { "methods": ["password"], "password": { "user": {
                "name": self.username,
                "domain": { "name": self.user_domain },
                "password": self.password.expose(),
            }}},
            "scope": { "project": {
                "name": self.project,
                "domain": { "name": self.project_domain },
            }},
        }})
    }
}

/// Why no token: the probe's outcome class, Keystone's status, a message.
pub type Refused = (&'static str, Option<u16>, String);

/// The token every probe uses, with a generation so concurrent 401s renew it once.
#[derive(Debug)]
pub struct Tokens {
    keystone: Keystone,
    current: Mutex<Option<(String, u64)>>,
}

impl Tokens {
    pub fn new(keystone: Keystone) -> Tokens {
        Tokens {
            keystone,
            current: Mutex::new(None),
        }
    }

    /// The current token (and its generation), fetched when there is none.
    pub async fn get(
        &self,
        client: &reqwest::Client,
        timeout: Duration,
    ) -> Result<(String, u64), Refused> {
        let mut current = self.current.lock().await;
        if let Some(token) = current.as_ref() {
            return Ok(token.clone());
        }
        let token = (self.issue(client, timeout).await?, 1);
        *current = Some(token.clone());
        Ok(token)
    }

    /// A new token, unless another probe already replaced generation `stale`.
    pub async fn renew(
        &self,
        client: &reqwest::Client,
        timeout: Duration,
        stale: u64,
    ) -> Result<(String, u64), Refused> {
        let mut current = self.current.lock().await;
        if let Some((token, generation)) = current.as_ref().filter(|(_, g)| *g != stale) {
            return Ok((token.clone(), *generation));
        }
        let token = (self.issue(client, timeout).await?, stale + 1);
        *current = Some(token.clone());
        Ok(token)
    }

    async fn issue(&self, client: &reqwest::Client, timeout: Duration) -> Result<String, Refused> {
        let url = self.keystone.tokens_url();
        let response = client
            .post(&url)
            .json(&self.keystone.request_body())
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| ("other", None, format!("token request to {url} failed: {e}")))?;
        let status = response.status().as_u16();
        let token = response
            .headers()
            .get("x-subject-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        match (status, token) {
            (201, Some(token)) => Ok(token),
            (status, _) => Err((
                "status",
                Some(status),
                format!("Keystone refused a token at {url}: status {status}"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(k: &str) -> Option<String> {
        match k {
            "OS_AUTH_URL" => Some("http://k:5000/v3/".into()),
            "OS_USERNAME" => Some("admin".into()),
            "OS_PASSWORD" => Some("s3cr3t-Pa55".into()),
            "OS_PROJECT_NAME" => Some("admin".into()),
            _ => None,
        }
    }

    #[test]
    fn credentials_come_from_os_variables_and_never_print() {
        let k = Keystone::from_vars(vars).unwrap();
        assert_eq!(k.tokens_url(), "http://k:5000/v3/auth/tokens");
        assert_eq!(k.user_domain, "Default");
        assert!(!format!("{k:?}").contains("s3cr3t"));
        let body = k.request_body().to_string();
        assert!(body.contains("\"methods\":[\"password\"]") && body.contains("\"project\""));
        let err =
            Keystone::from_vars(|k| (k != "OS_PASSWORD").then(|| vars(k)).flatten()).unwrap_err();
        assert!(err.to_string().contains("`OS_PASSWORD`"), "{err}");
    }

    #[test]
    fn without_os_auth_url_the_os_cloud_of_a_clouds_yaml_is_used() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("clouds.yaml");
        std::fs::write(
            &file,
            "clouds:\n  lab:\n    auth:\n      auth_url: http://127.0.0.9:5000/v3\n      username: admin\n      project_name: admin\n      user_domain_name: Default\n      project_domain_name: Default\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("secure.yaml"),
            "clouds:\n  lab:\n    auth:\n      password: s3cr3t-Pa55\n",
        )
        .unwrap();
        let path = file.display().to_string();
        let var = |k: &str| match k {
            "OS_CLOUD" => Some("lab".to_string()),
            "OS_CLIENT_CONFIG_FILE" => Some(path.clone()),
            _ => None,
        };
        let k = Keystone::from_vars(var).unwrap();
        assert_eq!(k.tokens_url(), "http://127.0.0.9:5000/v3/auth/tokens");
        assert_eq!(k.project, "admin");
        assert!(k.request_body().to_string().contains("s3cr3t-Pa55"));
        assert!(!format!("{k:?}").contains("s3cr3t"));
    }
}
