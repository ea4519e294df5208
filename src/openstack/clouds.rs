//! Cloud credentials the way OpenStack users already keep them: a `clouds.yaml` entry (with
//! its `secure.yaml` twin) found on the usual search path, or the plain `OS_*` variables.
//! The lab names the cloud; it never holds a password.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_yaml_ng::Value;

use crate::exit::{Kind, fail};
use crate::secret::Secret;

/// How rollci proves who it is to Keystone.
#[derive(Clone, PartialEq, Eq)]
pub enum Method {
    /// v3 or v2.0 password (`auth_type: password` / `v2password`).
    Password {
        username: String,
        user_id: Option<String>,
        password: Secret,
        user_domain: String,
    },
    /// v3 application credential (`auth_type: v3applicationcredential`).
    AppCredential {
        id: Option<String>,
        name: Option<String>,
        username: Option<String>,
        user_domain: String,
        secret: Secret,
    },
    /// Rackspace's v2.0 `RAX-KSKEY:apiKeyCredentials` (`auth_type: rackspace_apikey`).
    ApiKey { username: String, api_key: Secret },
}

/// Which Keystone API the auth URL speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V2,
    V3,
}

/// One cloud: where Keystone is, who we are, and the defaults of its service lookup.
#[derive(Clone)]
pub struct Cloud {
    /// `clouds.yaml` entry name, or `env` for the `OS_*` variables.
    pub name: String,
    /// The versioned Keystone URL (`…/v3` or `…/v2.0`), without a trailing slash.
    pub auth_url: String,
    pub version: Version,
    pub method: Method,
    pub project_name: Option<String>,
    pub project_id: Option<String>,
    pub project_domain: String,
    pub region: Option<String>,
    pub interface: String,
    /// `<service>_service_name` / `<service>_endpoint_override` keys, by service type.
    pub service_names: BTreeMap<String, String>,
    pub endpoint_overrides: BTreeMap<String, String>,
    /// Where it came from, for error messages.
    pub source: String,
}

impl fmt::Debug for Cloud {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let method = match &self.method {
            Method::Password { .. } => "password",
            Method::AppCredential { .. } => "application credential",
            Method::ApiKey { .. } => "api key",
        };
        f.debug_struct("Cloud")
            .field("name", &self.name)
            .field("auth_url", &self.auth_url)
            .field("method", &method)
            .field("source", &self.source)
            .finish()
    }
}

/// A variable of the process environment, empty meaning unset (as Jenkins passes them).
pub fn env_var(key: &str) -> Option<String> {
    std::env::var(key).ok().filter(|v| !v.is_empty())
}

/// The `clouds.yaml` files, in the order openstacksdk reads them.
pub fn search_path(var: &dyn Fn(&str) -> Option<String>) -> Vec<PathBuf> {
    if let Some(file) = var("OS_CLIENT_CONFIG_FILE") {
        return vec![PathBuf::from(file)];
    }
    let mut paths = vec![PathBuf::from("clouds.yaml")];
    if let Some(home) = var("HOME") {
        paths.push(Path::new(&home).join(".config/openstack/clouds.yaml"));
    }
    paths.push(PathBuf::from("/etc/openstack/clouds.yaml"));
    paths
}

/// The cloud to use: `name` (the lab's `cloud`, `--cloud` or `OS_CLOUD`) from the first
/// `clouds.yaml` that has it, or, without a name, the `OS_*` variables.
pub fn load(name: Option<&str>, var: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<Cloud> {
    let Some(name) = name else {
        return from_env(var);
    };
    let paths = search_path(var);
    for path in &paths {
        let Some(doc) = read_yaml(path)? else {
            continue;
        };
        let Some(entry) = doc.get("clouds").and_then(|c| c.get(name)) else {
            continue;
        };
        let mut entry = entry.clone();
        if let Some(secure) = read_yaml(&path.with_file_name("secure.yaml"))?
            && let Some(more) = secure.get("clouds").and_then(|c| c.get(name))
        {
            merge(&mut entry, more);
        }
        let source = format!("{} (cloud `{name}`)", path.display());
        return from_entry(name, &entry, &source).map_err(|e| fail(Kind::Usage, e));
    }
    let looked: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    Err(fail(
        Kind::Usage,
        format!(
            "no clouds.yaml defines the cloud `{name}` (looked in: {}; \
             OS_CLIENT_CONFIG_FILE names another file)",
            looked.join(", ")
        ),
    ))
}

fn read_yaml(path: &Path) -> anyhow::Result<Option<Value>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("failed to read {}", path.display())),
    };
    let doc = serde_yaml_ng::from_str(&text).map_err(|e| {
        fail(
            Kind::Usage,
            format!("{}: not valid YAML: {e}", path.display()),
        )
    })?;
    Ok(Some(doc))
}

/// `secure.yaml` values win over `clouds.yaml` ones, key by key.
fn merge(base: &mut Value, more: &Value) {
    match (base, more) {
        (Value::Mapping(base), Value::Mapping(more)) => {
            for (k, v) in more {
                match base.get_mut(k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        base.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (base, more) => *base = more.clone(),
    }
}

/// A string field of a YAML mapping (numbers, e.g. a numeric project id, as text).
fn text(map: &Value, key: &str) -> Option<String> {
    match map.get(key)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn from_entry(name: &str, entry: &Value, source: &str) -> Result<Cloud, String> {
    let empty = Value::Mapping(Default::default());
    let auth = entry.get("auth").unwrap_or(&empty);
    let get = |key: &str| text(auth, key);
    let auth_type = text(entry, "auth_type").unwrap_or_else(|| "password".into());
    let version_hint = text(entry, "identity_api_version");
    let mut fields = Fields {
        get: &get,
        source,
        auth_type: &auth_type,
        version_hint: version_hint.as_deref(),
        region: text(entry, "region_name"),
        interface: text(entry, "interface"),
    };
    let mut cloud = fields.build(name)?;
    cloud.region = fields.region.take();
    for (key, value) in entry.as_mapping().into_iter().flatten() {
        let (Some(key), Some(value)) = (key.as_str(), value.as_str()) else {
            continue;
        };
        if let Some(service) = key.strip_suffix("_service_name") {
            cloud.service_names.insert(service.into(), value.into());
        } else if let Some(service) = key.strip_suffix("_endpoint_override") {
            let url = value.trim_end_matches('/').to_string();
            cloud.endpoint_overrides.insert(service.into(), url);
        }
    }
    Ok(cloud)
}

/// The cloud the environment names, for the lab's probes and persistent resources: the
/// `OS_*` variables when `OS_AUTH_URL` is set (an openrc), else the `OS_CLOUD` entry of a
/// `clouds.yaml` (a lab that deploys its own cloud writes one).
pub fn from_os_env(var: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<Cloud> {
    match (var("OS_AUTH_URL"), var("OS_CLOUD")) {
        (None, Some(name)) => load(Some(&name), var),
        _ => from_env(var),
    }
}

/// The `OS_*` variables, as an openrc sets them.
pub fn from_env(var: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<Cloud> {
    let get = |key: &str| {
        let env = match key {
            "project_name" => var("OS_PROJECT_NAME").or_else(|| var("OS_TENANT_NAME")),
            "project_id" => var("OS_PROJECT_ID").or_else(|| var("OS_TENANT_ID")),
            other => var(&format!("OS_{}", other.to_ascii_uppercase())),
        };
        env.filter(|v| !v.is_empty())
    };
    if get("auth_url").is_none() {
        return Err(fail(
            Kind::Usage,
            "no cloud: name one (the lab's `cloud`, `--cloud` or `OS_CLOUD`, from a \
             clouds.yaml) or set the `OS_*` variables (`OS_AUTH_URL` is not set)",
        ));
    }
    let auth_type = get("auth_type").unwrap_or_else(|| "password".into());
    let version_hint = get("identity_api_version");
    let mut fields = Fields {
        get: &get,
        source: "the OS_* variables",
        auth_type: &auth_type,
        version_hint: version_hint.as_deref(),
        region: get("region_name"),
        interface: get("interface"),
    };
    let mut cloud = fields.build("env").map_err(|e| fail(Kind::Usage, e))?;
    cloud.region = fields.region.take();
    Ok(cloud)
}

/// The fields shared by both sources, read through one getter.
struct Fields<'a> {
    get: &'a dyn Fn(&str) -> Option<String>,
    source: &'a str,
    auth_type: &'a str,
    version_hint: Option<&'a str>,
    region: Option<String>,
    interface: Option<String>,
}

impl Fields<'_> {
    fn need(&self, key: &str) -> Result<String, String> {
        (self.get)(key).ok_or_else(|| format!("{}: `{key}` is missing", self.source))
    }

    fn build(&mut self, name: &str) -> Result<Cloud, String> {
        let get = self.get;
        let (auth_url, version) =
            versioned(&self.need("auth_url")?, self.auth_type, self.version_hint);
        let domain = |key: &str| {
            get(&format!("{key}_domain_name"))
                .or_else(|| get(&format!("{key}_domain_id")))
                .or_else(|| get("domain_name"))
                .unwrap_or_else(|| "Default".into())
        };
        let method = match self.auth_type {
            "password" | "v3password" | "v2password" => Method::Password {
                username: get("username").unwrap_or_default(),
                user_id: get("user_id"),
                password: Secret::new(self.need("password")?),
                user_domain: domain("user"),
            },
            "v3applicationcredential" => Method::AppCredential {
                id: get("application_credential_id"),
                name: get("application_credential_name"),
                username: get("username"),
                user_domain: domain("user"),
                secret: Secret::new(self.need("application_credential_secret")?),
            },
            "rackspace_apikey" | "rax_apikey" => Method::ApiKey {
                username: self.need("username")?,
                api_key: Secret::new(self.need("api_key")?),
            },
            other => {
                return Err(format!(
                    "{}: `auth_type: {other}` is not supported (password, v2password, \
                     v3applicationcredential, rackspace_apikey)",
                    self.source
                ));
            }
        };
        check_method(&method, version, self.source)?;
        Ok(Cloud {
            name: name.into(),
            auth_url,
            version,
            method,
            project_name: get("project_name"),
            project_id: get("project_id"),
            project_domain: domain("project"),
            region: None,
            interface: self.interface.take().unwrap_or_else(|| "public".into()),
            service_names: BTreeMap::new(),
            endpoint_overrides: BTreeMap::new(),
            source: self.source.into(),
        })
    }
}

fn check_method(method: &Method, version: Version, source: &str) -> Result<(), String> {
    match (method, version) {
        (
            Method::Password {
                username, user_id, ..
            },
            _,
        ) if username.is_empty() && user_id.is_none() => {
            Err(format!("{source}: `username` (or `user_id`) is missing"))
        }
        (
            Method::AppCredential {
                id: None,
                name: None,
                ..
            },
            _,
        ) => Err(format!(
            "{source}: `application_credential_id` (or `_name` with `username`) is missing"
        )),
        (Method::AppCredential { .. }, Version::V2) => Err(format!(
            "{source}: application credentials need Keystone v3, the auth URL is v2.0"
        )),
        (Method::ApiKey { .. }, Version::V3) => Err(format!(
            "{source}: Rackspace API keys need Keystone v2.0 (an auth URL ending in /v2.0)"
        )),
        _ => Ok(()),
    }
}

/// The auth URL with its version path: as given when it has one, else from the auth type
/// or `identity_api_version` (v3 by default).
fn versioned(url: &str, auth_type: &str, hint: Option<&str>) -> (String, Version) {
    let url = url.trim_end_matches('/');
    if url.ends_with("/v3") {
        return (url.into(), Version::V3);
    }
    if url.ends_with("/v2.0") {
        return (url.into(), Version::V2);
    }
    let v2 = matches!(auth_type, "v2password" | "rackspace_apikey" | "rax_apikey")
        || hint.is_some_and(|h| h.starts_with('2'));
    match v2 {
        true => (format!("{url}/v2.0"), Version::V2),
        false => (format!("{url}/v3"), Version::V3),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    fn write_clouds(dir: &Path, clouds: &str, secure: Option<&str>) -> PathBuf {
        let path = dir.join("clouds.yaml");
        std::fs::write(&path, clouds).unwrap();
        if let Some(secure) = secure {
            std::fs::write(dir.join("secure.yaml"), secure).unwrap();
        }
        path
    }

    #[test]
    fn a_clouds_yaml_entry_with_its_secure_yaml_password() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_clouds(
            dir.path(),
            "clouds:\n  lab:\n    auth:\n      auth_url: http://k:5000\n      username: ci\n      \
             project_name: ci\n      user_domain_name: Users\n    region_name: RegionTwo\n    \
             compute_service_name: nova2\n",
            Some("clouds:\n  lab:\n    auth:\n      password: pa55-w0rd\n"),
        );
        let file = path.to_string_lossy().to_string();
        let cloud = load(Some("lab"), &env(&[("OS_CLIENT_CONFIG_FILE", &file)])).unwrap();
        assert_eq!(cloud.auth_url, "http://k:5000/v3");
        assert_eq!(cloud.version, Version::V3);
        assert_eq!(cloud.region.as_deref(), Some("RegionTwo"));
        assert_eq!(cloud.service_names["compute"], "nova2");
        assert_eq!(cloud.interface, "public");
        match &cloud.method {
            Method::Password {
                password,
                user_domain,
                ..
            } => {
                assert_eq!(password.expose(), "pa55-w0rd");
                assert_eq!(user_domain, "Users");
            }
            _ => panic!("not a password"),
        }
        assert!(!format!("{cloud:?}").contains("pa55"));
    }

    #[test]
    fn a_missing_cloud_names_every_file_looked_in() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().to_string_lossy().to_string();
        let err = load(Some("nowhere"), &env(&[("HOME", &home)])).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("`nowhere`") && msg.contains(".config/openstack/clouds.yaml"),
            "{msg}"
        );
        assert!(msg.contains("/etc/openstack/clouds.yaml"), "{msg}");
    }

    #[test]
    fn rackspace_api_keys_speak_v2() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_clouds(
            dir.path(),
            "clouds:\n  rax:\n    auth_type: rackspace_apikey\n    auth:\n      \
             auth_url: https://identity.api.rackspacecloud.com/\n      username: u\n      \
             api_key: k3y\n",
            None,
        );
        let file = path.to_string_lossy().to_string();
        let cloud = load(Some("rax"), &env(&[("OS_CLIENT_CONFIG_FILE", &file)])).unwrap();
        assert_eq!(
            cloud.auth_url,
            "https://identity.api.rackspacecloud.com/v2.0"
        );
        assert!(matches!(cloud.method, Method::ApiKey { .. }));
    }

    #[test]
    fn os_variables_with_an_application_credential() {
        let cloud = from_env(&env(&[
            ("OS_AUTH_URL", "http://k:5000/v3/"),
            ("OS_AUTH_TYPE", "v3applicationcredential"),
            ("OS_APPLICATION_CREDENTIAL_ID", "abc"),
            ("OS_APPLICATION_CREDENTIAL_SECRET", "s3cret"),
            ("OS_REGION_NAME", "RegionOne"),
        ]))
        .unwrap();
        assert_eq!(cloud.auth_url, "http://k:5000/v3");
        assert!(matches!(&cloud.method, Method::AppCredential { id: Some(id), .. } if id == "abc"));
        assert_eq!(cloud.region.as_deref(), Some("RegionOne"));
    }

    #[test]
    fn bad_credentials_are_named() {
        let err = from_env(&env(&[])).unwrap_err().to_string();
        assert!(err.contains("OS_AUTH_URL"), "{err}");
        let err = from_env(&env(&[
            ("OS_AUTH_URL", "http://k/v3"),
            ("OS_USERNAME", "u"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(err.contains("`password` is missing"), "{err}");
        let err = from_env(&env(&[
            ("OS_AUTH_URL", "http://k/v2.0"),
            ("OS_AUTH_TYPE", "v3applicationcredential"),
            ("OS_APPLICATION_CREDENTIAL_ID", "abc"),
            ("OS_APPLICATION_CREDENTIAL_SECRET", "s"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(err.contains("need Keystone v3"), "{err}");
    }
}
