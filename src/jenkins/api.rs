//! Jenkins' REST API, as `rollci jenkins push` and `lint` use it: basic auth with a user's
//! API token, a CSRF crumb when the server issues one, create-or-update of a job from its
//! config.xml, and the declarative pipeline linter.
//!
//! The token is never printed: [`Secret`] redacts itself, `JENKINS_URL` may not carry
//! credentials, and server answers quoted in errors are scrubbed of it.

use std::fmt;
use std::time::Duration;

use anyhow::Context;
use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::header::{CONTENT_TYPE, COOKIE, SET_COOKIE};
use reqwest::{StatusCode, Url};

use crate::exit::{Kind, fail};
use crate::secret::Secret;

/// What the linter answers for a valid Jenkinsfile.
pub const LINT_OK: &str = "Jenkinsfile successfully validated.";

/// A Jenkins user and one of its API tokens.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub user: String,
    pub token: Secret,
}

/// The crumb to send with every POST, and the session cookie it is bound to.
#[derive(Debug, Clone)]
struct Crumb {
    field: String,
    value: String,
    cookies: Option<String>,
}

/// One Jenkins server.
#[derive(Debug)]
pub struct Server {
    base: Url,
    auth: Option<Credentials>,
    http: Client,
    crumb: Option<Crumb>,
}

/// What `push` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    Created,
    Updated,
}

impl fmt::Display for Pushed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Pushed::Created => "created",
            Pushed::Updated => "updated",
        })
    }
}

impl Server {
    /// The server of `JENKINS_URL`, as `JENKINS_USER` with `JENKINS_API_TOKEN` (both or
    /// neither: anonymous).
    pub fn from_env() -> anyhow::Result<Server> {
        Server::from_vars(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
    }

    /// [`Server::from_env`] over any source of variables.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> anyhow::Result<Server> {
        let url = var("JENKINS_URL").ok_or_else(|| {
            fail(
                Kind::Usage,
                "`JENKINS_URL` is not set\n(hint: export JENKINS_URL=https://jenkins.example.com/)",
            )
        })?;
        let auth = match (var("JENKINS_USER"), var("JENKINS_API_TOKEN")) {
            (Some(user), Some(token)) => Some(Credentials {
                user,
                token: Secret::new(token),
            }),
            (None, None) => None,
            _ => {
                return Err(fail(
                    Kind::Usage,
                    "set both `JENKINS_USER` and `JENKINS_API_TOKEN`, or neither (anonymous)",
                ));
            }
        };
        Server::new(&url, auth)
    }

    /// A server at `url` (its path may have a prefix such as `/jenkins/`).
    pub fn new(url: &str, auth: Option<Credentials>) -> anyhow::Result<Server> {
        let base = base_url(url)?;
        let http = Client::builder()
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("rollci/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("failed to build the HTTP client")?;
        Ok(Server {
            base,
            auth,
            http,
            crumb: None,
        })
    }

    /// The URL of a job (`folder/name` for a job in a folder).
    pub fn job_url(&self, job: &str) -> Url {
        self.url(&[job_segments(job), vec![String::new()]].concat())
    }

    /// Creates the job from `config_xml`, or replaces its configuration if it exists.
    pub fn push(&mut self, job: &str, config_xml: &str) -> anyhow::Result<Pushed> {
        check_job_name(job)?;
        self.fetch_crumb()?;
        let mut segments = job_segments(job);
        segments.extend(["api", "json"].map(String::from));
        let probe = self.url(&segments);
        let exists = match self.send(self.http.get(probe.clone()), "look the job up")? {
            r if r.status() == StatusCode::NOT_FOUND => false,
            r => expect_ok(r, "GET", &probe, "look the job up", self.token()).map(|_| true)?,
        };
        let url = if exists {
            self.url(&[job_segments(job), vec!["config.xml".into()]].concat())
        } else {
            self.create_url(job)
        };
        self.post_xml(&url, config_xml)?;
        Ok(if exists {
            Pushed::Updated
        } else {
            Pushed::Created
        })
    }

    /// Posts a Jenkinsfile to the declarative linter and returns its answer (the pipeline
    /// is valid when it is [`LINT_OK`]).
    pub fn lint(&mut self, jenkinsfile: &str) -> anyhow::Result<String> {
        self.fetch_crumb()?;
        let url = self.url(&["pipeline-model-converter".into(), "validate".into()]);
        let request = self.post(&url).form(&[("jenkinsfile", jenkinsfile)]);
        let response = self.send(request, "lint the Jenkinsfile")?;
        let body = expect_ok(response, "POST", &url, "lint the Jenkinsfile", self.token())?;
        Ok(body.trim_end().to_string())
    }

    /// `GET /crumbIssuer/api/json`; a 404 means the server has no CSRF protection.
    fn fetch_crumb(&mut self) -> anyhow::Result<()> {
        if self.crumb.is_some() {
            return Ok(());
        }
        let url = self.url(&["crumbIssuer".into(), "api".into(), "json".into()]);
        let response = self.send(self.http.get(url.clone()), "get a crumb")?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(());
        }
        let cookies = session_cookies(&response);
        let body = expect_ok(response, "GET", &url, "get a crumb", self.token())?;
        let json: serde_json::Value = serde_json::from_str(&body)
            .with_context(|| format!("failed to read the crumb of `GET {url}`"))?;
        let field = json["crumbRequestField"].as_str();
        let value = json["crumb"].as_str();
        let (Some(field), Some(value)) = (field, value) else {
            anyhow::bail!("`GET {url}` answered no `crumbRequestField`/`crumb`: {body}");
        };
        self.crumb = Some(Crumb {
            field: field.to_string(),
            value: value.to_string(),
            cookies,
        });
        Ok(())
    }

    fn post_xml(&self, url: &Url, xml: &str) -> anyhow::Result<()> {
        let request = self
            .post(url)
            .header(CONTENT_TYPE, "application/xml; charset=utf-8")
            .body(xml.to_string());
        let response = self.send(request, "upload the job's config.xml")?;
        expect_ok(
            response,
            "POST",
            url,
            "upload the job's config.xml",
            self.token(),
        )?;
        Ok(())
    }

    /// A POST carrying the crumb and its session cookie, when there is one.
    fn post(&self, url: &Url) -> RequestBuilder {
        let mut request = self.http.post(url.clone());
        if let Some(crumb) = &self.crumb {
            request = request.header(crumb.field.as_str(), crumb.value.as_str());
            if let Some(cookies) = &crumb.cookies {
                request = request.header(COOKIE, cookies.as_str());
            }
        }
        request
    }

    /// Sends with basic auth; a transport error names what was being done.
    fn send(&self, request: RequestBuilder, what: &str) -> anyhow::Result<Response> {
        let request = match &self.auth {
            Some(c) => request.basic_auth(&c.user, Some(c.token.expose())),
            None => request,
        };
        request.send().map_err(|e| {
            fail(
                Kind::Infra,
                format!("failed to {what} on Jenkins at `{}`: {e}", self.base),
            )
        })
    }

    /// `POST …/createItem?name=NAME` in the job's folder.
    fn create_url(&self, job: &str) -> Url {
        let mut segments = job_segments(job);
        let name = segments.pop().unwrap_or_default();
        segments.pop(); // the `job` before the name
        segments.push("createItem".into());
        let mut url = self.url(&segments);
        url.query_pairs_mut().append_pair("name", &name);
        url
    }

    fn url(&self, segments: &[String]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    fn token(&self) -> Option<&str> {
        self.auth.as_ref().map(|c| c.token.expose())
    }
}

/// `JENKINS_URL` parsed, with no credentials in it (they would show in every error).
fn base_url(text: &str) -> anyhow::Result<Url> {
    let url = Url::parse(text)
        .map_err(|e| fail(Kind::Usage, format!("`JENKINS_URL` is not a URL: {e}")))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(fail(
            Kind::Usage,
            "`JENKINS_URL` must not carry credentials\n(hint: use JENKINS_USER and JENKINS_API_TOKEN)",
        ));
    }
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Err(fail(
            Kind::Usage,
            format!("`JENKINS_URL` must be an http(s) URL, not `{url}`"),
        ));
    }
    Ok(url)
}

/// `a/b` → `job/a/job/b`: Jenkins' path of a job in folder `a`.
fn job_segments(job: &str) -> Vec<String> {
    job.split('/')
        .flat_map(|name| ["job".to_string(), name.to_string()])
        .collect()
}

/// Job names Jenkins accepts: no empty folder level, none of its unsafe characters.
fn check_job_name(job: &str) -> anyhow::Result<()> {
    let bad = |name: &str| {
        name.is_empty()
            || name == "."
            || name == ".."
            || name
                .chars()
                .any(|c| "?*\\:;|<>[]!@#$%^&\"'".contains(c) || c.is_control())
    };
    if job.split('/').any(bad) {
        return Err(fail(
            Kind::Usage,
            format!("`{job}` is not a Jenkins job name (use `folder/name` for a job in a folder)"),
        ));
    }
    Ok(())
}

/// The `name=value` pairs of the response's cookies, as a `Cookie` header.
fn session_cookies(response: &Response) -> Option<String> {
    let pairs: Vec<&str> = response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .map(str::trim)
        .filter(|pair| pair.contains('='))
        .collect();
    (!pairs.is_empty()).then(|| pairs.join("; "))
}

/// The body of a 2xx answer; otherwise an error naming the request, its status, a hint,
/// and the start of the server's answer (scrubbed of the token).
fn expect_ok(
    response: Response,
    method: &str,
    url: &Url,
    what: &str,
    token: Option<&str>,
) -> anyhow::Result<String> {
    let status = response.status();
    let body = response.text().unwrap_or_default();
    if status.is_success() {
        return Ok(body);
    }
    let excerpt: String = redact(body.trim(), token).chars().take(400).collect();
    Err(fail(
        Kind::Infra,
        format!(
            "failed to {what}: `{method} {url}` answered {status}{}\n{excerpt}",
            hint(status)
        ),
    ))
}

fn hint(status: StatusCode) -> &'static str {
    match status {
        StatusCode::UNAUTHORIZED => {
            "\n(hint: set JENKINS_USER and JENKINS_API_TOKEN to a user and one of its API tokens)"
        }
        StatusCode::FORBIDDEN => {
            "\n(hint: the user lacks the permission (Job/Create, Job/Configure, Overall/Read), \
             or the crumb was refused)"
        }
        _ => "",
    }
}

/// `text` with every occurrence of the secret replaced.
fn redact(text: &str, secret: Option<&str>) -> String {
    match secret {
        Some(s) if !s.is_empty() => text.replace(s, "***"),
        _ => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let server = Server::from_vars(vars(&[
            ("JENKINS_URL", "http://127.0.0.1:1/"),
            ("JENKINS_USER", "ci"),
            ("JENKINS_API_TOKEN", "s3cr3t-token"),
        ]))
        .unwrap();
        let debug = format!("{server:?}");
        assert!(!debug.contains("s3cr3t-token"), "{debug}");
        assert!(debug.contains("Secret(<redacted>)"), "{debug}");
    }

    #[test]
    fn env_needs_a_url_and_both_credentials_or_none() {
        assert!(Server::from_vars(vars(&[])).is_err());
        let half = [("JENKINS_URL", "http://x/"), ("JENKINS_USER", "ci")];
        assert!(Server::from_vars(vars(&half)).is_err());
        assert!(Server::from_vars(vars(&[("JENKINS_URL", "http://x/")])).is_ok());
    }

    #[test]
    fn url_with_credentials_is_refused_without_echoing_them() {
        let err = base_url("https://ci:tok3n@jenkins.example.com/").unwrap_err();
        assert!(!format!("{err:#}").contains("tok3n"));
    }

    #[test]
    fn job_urls_handle_prefixes_folders_and_encoding() {
        let server = Server::new("https://ci.example.com/jenkins", None).unwrap();
        assert_eq!(
            server.job_url("team/my job").as_str(),
            "https://ci.example.com/jenkins/job/team/job/my%20job/"
        );
        assert_eq!(
            server.create_url("team/my job").as_str(),
            "https://ci.example.com/jenkins/job/team/createItem?name=my+job"
        );
        assert_eq!(
            server.create_url("demo").as_str(),
            "https://ci.example.com/jenkins/createItem?name=demo"
        );
    }

    #[test]
    fn job_names_are_checked() {
        assert!(check_job_name("demo").is_ok());
        assert!(check_job_name("team/demo-1.2").is_ok());
        for bad in ["", "a//b", "../x", "a?b", "x\ny"] {
            assert!(check_job_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn redaction_replaces_the_token() {
        assert_eq!(redact("a tok b tok", Some("tok")), "a *** b ***");
        assert_eq!(redact("a", None), "a");
    }
}
