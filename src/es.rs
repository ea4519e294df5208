//! Pushing a run's results to Elasticsearch / OpenSearch: one `_bulk` request holding a
//! `run` document, one `window` document per outage window and one `smoke_test` document
//! per smoke test of each phase.
//!
//! Document ids are derived from the run id, the kind and a counter, so pushing the same
//! run again overwrites its documents instead of duplicating them. Secrets (password, API
//! key) live in [`Secret`], whose `Debug` is redacted, and never reach an error message.

use std::fmt;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use serde_json::{Value, json};

use crate::evidence::{Smoke, TestCase};
use crate::exit::{Kind, fail};
use crate::report::Summary;

/// Index used when `ROLLCI_ES_INDEX` is not set.
pub const DEFAULT_INDEX: &str = "rollci";
/// Connect and whole-request timeout.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// Smoke details (tracebacks) are cut to this many characters in a document.
const MAX_DETAILS: usize = 4000;

/// A password or API key: `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }
    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// How to authenticate to the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    None,
    Basic {
        user: String,
        password: Secret,
    },
    /// `Authorization: ApiKey <key>` (the base64 "encoded" key ES hands out).
    ApiKey(Secret),
}

/// Where and how to push, read from `ROLLCI_ES_*` (see [`EsConfig::from_env`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EsConfig {
    /// Base URL without a trailing slash, e.g. `https://es.example:9200`.
    pub url: String,
    pub index: String,
    pub auth: Auth,
    pub timeout: Duration,
}

impl EsConfig {
    /// Reads `ROLLCI_ES_URL` (unset or empty: `Ok(None)`, nothing to push),
    /// `ROLLCI_ES_INDEX`, `ROLLCI_ES_USER` + `ROLLCI_ES_PASSWORD` or `ROLLCI_ES_API_KEY`.
    pub fn from_env() -> anyhow::Result<Option<EsConfig>> {
        EsConfig::from_vars(|name| std::env::var(name).ok())
    }

    /// [`EsConfig::from_env`] over any lookup (tests pass a map, not the process env).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> anyhow::Result<Option<EsConfig>> {
        let var = |name: &str| var(name).filter(|v| !v.is_empty());
        let Some(url) = var("ROLLCI_ES_URL") else {
            return Ok(None);
        };
        let index = var("ROLLCI_ES_INDEX").unwrap_or_else(|| DEFAULT_INDEX.into());
        check_index(&index)?;
        let auth = match (
            var("ROLLCI_ES_USER"),
            var("ROLLCI_ES_PASSWORD"),
            var("ROLLCI_ES_API_KEY"),
        ) {
            (None, None, None) => Auth::None,
            (Some(user), Some(password), None) => Auth::Basic {
                user,
                password: Secret(password),
            },
            (None, None, Some(key)) => Auth::ApiKey(Secret(key)),
            (Some(_), None, None) | (None, Some(_), None) => {
                return Err(usage(
                    "`ROLLCI_ES_USER` and `ROLLCI_ES_PASSWORD` go together: set both or neither",
                ));
            }
            _ => {
                return Err(usage(
                    "set either `ROLLCI_ES_USER`/`ROLLCI_ES_PASSWORD` or `ROLLCI_ES_API_KEY`, not both",
                ));
            }
        };
        Ok(Some(EsConfig {
            url: check_url(&url)?,
            index,
            auth,
            timeout: TIMEOUT,
        }))
    }

    fn bulk_url(&self) -> String {
        format!("{}/_bulk", self.url)
    }
}

fn usage(message: &str) -> anyhow::Error {
    fail(
        Kind::Usage,
        format!("{message} (hint: see `ROLLCI_ES_*` in the README)"),
    )
}

/// An `http(s)://` base URL with no credentials in it (they belong in `ROLLCI_ES_*`,
/// where they cannot leak through a message that quotes the URL).
fn check_url(url: &str) -> anyhow::Result<String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| usage("`ROLLCI_ES_URL` must start with `http://` or `https://`"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(usage(
            "`ROLLCI_ES_URL` must not contain credentials; use `ROLLCI_ES_USER`/`ROLLCI_ES_PASSWORD` or `ROLLCI_ES_API_KEY`",
        ));
    }
    if authority.is_empty() || url.contains(['?', '#']) {
        return Err(usage(
            "`ROLLCI_ES_URL` must be a base URL like `https://es.example:9200`",
        ));
    }
    Ok(url.trim_end_matches('/').to_string())
}

/// Elasticsearch's rules for index names, checked before anything is sent.
fn check_index(index: &str) -> anyhow::Result<()> {
    let bad_char = index
        .chars()
        .any(|c| c.is_uppercase() || c.is_whitespace() || "\\/*?\"<>|,#:".contains(c));
    let bad_start = index.starts_with(['-', '_', '+']) || index == "." || index == "..";
    if index.is_empty() || bad_char || bad_start || index.len() > 255 {
        return Err(usage(&format!(
            "`ROLLCI_ES_INDEX` `{index}` is not a valid index name (lowercase, no spaces or \\/*?\"<>|,#:, not starting with -_+)"
        )));
    }
    Ok(())
}

/// What a successful push did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushOutcome {
    pub url: String,
    pub index: String,
    pub documents: usize,
    pub runs: usize,
    pub windows: usize,
    pub smoke_tests: usize,
}

impl fmt::Display for PushOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "pushed {} documents to `{}` index `{}` ({} run, {} windows, {} smoke tests)",
            self.documents, self.url, self.index, self.runs, self.windows, self.smoke_tests
        )
    }
}

/// One document and its deterministic id.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub id: String,
    pub source: Value,
}

/// Pushes the run (`started` is its `@timestamp`, e.g. the journal's `created`) and the
/// smoke runs of every phase in one `_bulk` request.
pub fn push(
    summary: &Summary,
    smoke: &[Smoke],
    started: DateTime<Utc>,
    config: &EsConfig,
) -> anyhow::Result<PushOutcome> {
    let docs = documents(summary, smoke, started);
    let body = bulk_body(&config.index, &docs)?;
    let response = send(config, body)?;
    check_response(config, &response, docs.len())?;
    let count = |kind: &str| docs.iter().filter(|d| d.source["type"] == kind).count();
    Ok(PushOutcome {
        url: config.url.clone(),
        index: config.index.clone(),
        documents: docs.len(),
        runs: count("run"),
        windows: count("window"),
        smoke_tests: count("smoke_test"),
    })
}

/// Pushes a workspace's run: summary from the journal, smoke runs from the evidence.
pub fn push_workspace(
    workspace: &std::path::Path,
    state: &crate::journal::State,
    config: &EsConfig,
) -> anyhow::Result<PushOutcome> {
    let summary = crate::report::summarize(state, workspace);
    let mut smoke = Vec::new();
    for phase in ["before", "after"] {
        let name = format!("smoke-{phase}.json");
        smoke.extend(crate::evidence::read::<Smoke>(workspace, &name)?);
    }
    push(&summary, &smoke, state.created, config)
}

/// Every document of a run, in a stable order.
pub fn documents(summary: &Summary, smoke: &[Smoke], started: DateTime<Utc>) -> Vec<Document> {
    let mut docs = vec![Document {
        id: format!("{}-run", summary.run_id),
        source: run_document(summary, started),
    }];
    let windows = summary
        .services
        .values()
        .flat_map(|s| s.windows.iter().map(move |w| (s, w)));
    for (n, (service, w)) in windows.enumerate() {
        let mut source = common(summary, "window", w.start);
        source["service"] = json!(service.name);
        source["start"] = json!(w.start);
        source["end"] = json!(w.end);
        source["duration_ms"] = json!(w.duration_ms);
        source["action"] = json!(w.action);
        source["failures"] = json!(w.failures);
        source["class"] = json!(w.class);
        docs.push(Document {
            id: format!("{}-window-{n}", summary.run_id),
            source,
        });
    }
    for run in smoke {
        for (n, test) in run.tests.iter().enumerate() {
            docs.push(Document {
                id: format!("{}-smoke-{}-{n}", summary.run_id, run.phase),
                source: smoke_document(summary, run, test, started),
            });
        }
    }
    docs
}

/// Fields every document has, so each can be filtered by run on its own.
fn common(summary: &Summary, kind: &str, at: DateTime<Utc>) -> Value {
    json!({
        "type": kind,
        "@timestamp": at,
        "run_id": summary.run_id,
        "lab": summary.lab,
        "from_release": summary.from_release,
        "to_release": summary.to_release,
        "outcome": summary.outcome,
    })
}

/// The summary minus its big arrays: windows and persistent resources go as their own
/// documents or counts, and services become an array (a map keyed by service name would
/// add a field to the index mapping per service).
fn run_document(summary: &Summary, started: DateTime<Utc>) -> Value {
    let mut doc = serde_json::to_value(summary).unwrap_or_else(|_| json!({}));
    let services: Vec<Value> = summary
        .services
        .values()
        .map(|s| {
            let mut v = serde_json::to_value(s).unwrap_or_else(|_| json!({}));
            v["windows"] = json!(s.windows.len());
            v
        })
        .collect();
    doc["services"] = json!(services);
    if let Some(p) = doc.get_mut("persistent").and_then(Value::as_object_mut) {
        p.remove("resources");
    }
    let base = common(summary, "run", started);
    for (k, v) in base.as_object().into_iter().flatten() {
        doc[k] = v.clone();
    }
    doc
}

fn smoke_document(
    summary: &Summary,
    run: &Smoke,
    test: &TestCase,
    started: DateTime<Utc>,
) -> Value {
    let mut doc = common(summary, "smoke_test", started);
    doc["phase"] = json!(run.phase);
    doc["test_id"] = json!(test.id);
    doc["status"] = json!(test.status);
    doc["duration_ms"] = json!(test.duration_ms);
    doc["regression"] = json!(run.regressions.contains(&test.id));
    if let Some(details) = &test.details {
        doc["details"] = json!(details.chars().take(MAX_DETAILS).collect::<String>());
    }
    doc
}

/// The NDJSON body: an `index` action line and a source line per document, each ending
/// with a newline (the last one too, as `_bulk` requires).
pub fn bulk_body(index: &str, docs: &[Document]) -> anyhow::Result<String> {
    let mut body = String::new();
    for doc in docs {
        let action = json!({"index": {"_index": index, "_id": doc.id}});
        body.push_str(&serde_json::to_string(&action)?);
        body.push('\n');
        body.push_str(&serde_json::to_string(&doc.source).context("failed to encode a document")?);
        body.push('\n');
    }
    Ok(body)
}

/// A response: HTTP status and body text.
struct Answer {
    status: reqwest::StatusCode,
    body: String,
}

fn send(config: &EsConfig, body: String) -> anyhow::Result<Answer> {
    let url = config.bulk_url();
    let client = reqwest::blocking::Client::builder()
        .timeout(config.timeout)
        .connect_timeout(config.timeout)
        .build()
        .context("failed to build the HTTP client")?;
    let mut request = client
        .post(&url)
        .header(CONTENT_TYPE, "application/x-ndjson")
        .body(body);
    request = match &config.auth {
        Auth::None => request,
        Auth::Basic { user, password } => request.basic_auth(user, Some(password.expose())),
        Auth::ApiKey(key) => {
            let mut value =
                HeaderValue::from_str(&format!("ApiKey {}", key.expose())).map_err(|_| {
                    usage("`ROLLCI_ES_API_KEY` holds characters not allowed in a header")
                })?;
            value.set_sensitive(true);
            request.header(AUTHORIZATION, value)
        }
    };
    // `without_url`: the message names the URL itself, once, and reqwest's own wording
    // (timeout, refused, TLS) stays as the cause.
    let response = request
        .send()
        .map_err(|e| anyhow::Error::new(e.without_url()))
        .with_context(|| {
            format!(
                "failed to send `POST {url}` to Elasticsearch (timeout {}s)",
                config.timeout.as_secs()
            )
        })?;
    let status = response.status();
    let body = response
        .text()
        .map_err(|e| anyhow::Error::new(e.without_url()))
        .with_context(|| format!("failed to read the answer of `POST {url}`"))?;
    Ok(Answer { status, body })
}

/// HTTP errors and `"errors": true` become one error naming how many items failed and why.
fn check_response(config: &EsConfig, answer: &Answer, sent: usize) -> anyhow::Result<()> {
    let url = config.bulk_url();
    let json: Option<Value> = serde_json::from_str(&answer.body).ok();
    if !answer.status.is_success() {
        let reason = json
            .as_ref()
            .and_then(error_reason)
            .unwrap_or_else(|| excerpt(&answer.body));
        let hint = match answer.status.as_u16() {
            401 | 403 => {
                "\n(hint: check `ROLLCI_ES_USER`/`ROLLCI_ES_PASSWORD` or `ROLLCI_ES_API_KEY` and the user's `index` privilege)"
            }
            404 => "\n(hint: is `ROLLCI_ES_URL` the cluster's base URL?)",
            413 => "\n(hint: the request is larger than the cluster's `http.max_content_length`)",
            _ => "",
        };
        anyhow::bail!(
            "failed to push to Elasticsearch: `POST {url}` answered HTTP {}: {reason}{hint}",
            answer.status
        );
    }
    let json = json.with_context(|| {
        format!("failed to push to Elasticsearch: `POST {url}` answered with something that is not JSON: {}", excerpt(&answer.body))
    })?;
    if json["errors"] == Value::Bool(true) {
        let items = json["items"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        let failed: Vec<&Value> = items.iter().filter_map(item_error).collect();
        let first = failed
            .first()
            .map_or("no reason given".into(), |e| describe(e));
        anyhow::bail!(
            "failed to push to Elasticsearch: {} of {sent} documents were rejected by index `{}`; first: {first}",
            failed.len(),
            config.index
        );
    }
    Ok(())
}

/// The `error` of a `_bulk` item (`{"index": {"status": 400, "error": {…}}}`), if it failed.
fn item_error(item: &Value) -> Option<&Value> {
    let result = item.as_object()?.values().next()?;
    result.get("error").filter(|e| !e.is_null())
}

/// `type: reason` of an ES error object (or its text when it is a plain string).
fn describe(error: &Value) -> String {
    match error {
        Value::String(s) => s.clone(),
        _ => format!(
            "{}: {}",
            error["type"].as_str().unwrap_or("error"),
            error["reason"].as_str().unwrap_or("no reason given")
        ),
    }
}

/// The reason of a whole-request error body (`{"error": {...}, "status": 401}`).
fn error_reason(body: &Value) -> Option<String> {
    body.get("error").map(describe)
}

/// The start of a body that is not an ES error object.
fn excerpt(body: &str) -> String {
    let text: String = body.chars().take(300).collect();
    if text.trim().is_empty() {
        "(empty body)".into()
    } else {
        format!("`{}`", text.trim())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::{Counts, ServiceReport, Window};
    use crate::report::{PersistentSummary, ResourceSummary, SmokeSummary};
    use std::collections::HashMap;

    fn vars(pairs: &[(&str, &str)]) -> anyhow::Result<Option<EsConfig>> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        EsConfig::from_vars(|k| map.get(k).cloned())
    }

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap()
    }

    fn summary() -> Summary {
        let window = |s| Window {
            start: at(s),
            end: at(s + 2),
            duration_ms: 2000,
            action: Some("node1".into()),
            failures: 4,
            class: "refused".into(),
        };
        let service = ServiceReport {
            name: "api".into(),
            windows: vec![window(10), window(20)],
            ..ServiceReport::default()
        };
        Summary {
            summary_version: 1,
            run_id: "r1".into(),
            lab: "demo".into(),
            from_release: "A".into(),
            to_release: "B".into(),
            outcome: "failed".into(),
            flow_complete: true,
            incomplete: Vec::new(),
            steps: Vec::new(),
            resources: ResourceSummary {
                total: 0,
                destroyed: 0,
                live: Vec::new(),
            },
            services: [("api".to_string(), service)].into(),
            upgrade_actions: Vec::new(),
            smoke: SmokeSummary::default(),
            persistent: PersistentSummary::default(),
            leaked: Vec::new(),
        }
    }

    fn smoke(phase: &str, ids: &[&str]) -> Smoke {
        Smoke {
            phase: phase.into(),
            counts: Counts::default(),
            tests: ids
                .iter()
                .map(|id| TestCase {
                    id: id.to_string(),
                    status: "success".into(),
                    duration_ms: Some(1.5),
                    details: None,
                })
                .collect(),
            max_failures: None,
            regressions: Vec::new(),
        }
    }

    #[test]
    fn no_url_means_no_push() {
        assert_eq!(vars(&[]).unwrap(), None);
        assert_eq!(vars(&[("ROLLCI_ES_URL", "")]).unwrap(), None);
    }

    #[test]
    fn config_reads_defaults_and_auth() {
        let c = vars(&[("ROLLCI_ES_URL", "http://es:9200/")])
            .unwrap()
            .unwrap();
        assert_eq!(
            (c.url.as_str(), c.index.as_str(), &c.auth),
            ("http://es:9200", "rollci", &Auth::None)
        );
        let c = vars(&[
            ("ROLLCI_ES_URL", "https://es"),
            ("ROLLCI_ES_API_KEY", "k3y"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(c.auth, Auth::ApiKey(Secret::new("k3y")));
    }

    #[test]
    fn bad_config_is_a_usage_error() {
        for pairs in [
            vec![("ROLLCI_ES_URL", "es:9200")],
            vec![("ROLLCI_ES_URL", "http://u:hunter2@es")],
            vec![("ROLLCI_ES_URL", "http://es"), ("ROLLCI_ES_INDEX", "Upper")],
            vec![("ROLLCI_ES_URL", "http://es"), ("ROLLCI_ES_USER", "u")],
            vec![
                ("ROLLCI_ES_URL", "http://es"),
                ("ROLLCI_ES_PASSWORD", "hunter2"),
                ("ROLLCI_ES_USER", "u"),
                ("ROLLCI_ES_API_KEY", "k"),
            ],
        ] {
            let err = vars(&pairs).unwrap_err();
            assert_eq!(crate::exit::kind_of(&err), Kind::Usage, "{err}");
            assert!(!err.to_string().contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn debug_redacts_secrets() {
        let c = vars(&[
            ("ROLLCI_ES_URL", "http://es"),
            ("ROLLCI_ES_USER", "u"),
            ("ROLLCI_ES_PASSWORD", "hunter2"),
        ])
        .unwrap()
        .unwrap();
        let text = format!("{c:?} {:?}", Auth::ApiKey(Secret::new("s3cr3t")));
        assert!(
            !text.contains("hunter2") && !text.contains("s3cr3t"),
            "{text}"
        );
        assert!(text.contains("redacted"));
    }

    #[test]
    fn documents_have_stable_ids_and_types() {
        let smoke = [smoke("before", &["t1", "t2"]), smoke("after", &["t1"])];
        let docs = documents(&summary(), &smoke, at(0));
        let ids: Vec<&str> = docs.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "r1-run",
                "r1-window-0",
                "r1-window-1",
                "r1-smoke-before-0",
                "r1-smoke-before-1",
                "r1-smoke-after-0"
            ]
        );
        assert_eq!(
            docs,
            documents(&summary(), &smoke, at(0)),
            "ids must not change between pushes"
        );
        let run = &docs[0].source;
        assert_eq!(run["type"], "run");
        assert_eq!(run["services"][0]["windows"], 2);
        assert!(run["persistent"].get("resources").is_none());
        assert_eq!(docs[1].source["duration_ms"], 2000);
        assert_eq!(docs[5].source["phase"], "after");
    }

    #[test]
    fn bulk_body_pairs_actions_and_sources() {
        let docs = documents(&summary(), &[], at(0));
        let body = bulk_body("idx", &docs).unwrap();
        assert!(body.ends_with('\n'));
        let lines: Vec<Value> = body
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2 * docs.len());
        assert_eq!(
            lines[0],
            json!({"index": {"_index": "idx", "_id": "r1-run"}})
        );
        assert_eq!(lines[1]["type"], "run");
    }

    fn answer(status: u16, body: Value) -> Answer {
        Answer {
            status: reqwest::StatusCode::from_u16(status).unwrap(),
            body: body.to_string(),
        }
    }

    #[test]
    fn item_failures_are_counted_with_the_first_reason() {
        let c = vars(&[("ROLLCI_ES_URL", "http://es")]).unwrap().unwrap();
        let ok = json!({"index": {"status": 201, "result": "created"}});
        let bad = json!({"index": {"status": 400, "error": {"type": "mapper_parsing_exception", "reason": "failed to parse field [x]"}}});
        let body = json!({"took": 1, "errors": true, "items": [ok, bad.clone(), bad]});
        let err = check_response(&c, &answer(200, body), 3)
            .unwrap_err()
            .to_string();
        assert!(err.contains("2 of 3 documents were rejected"), "{err}");
        assert!(
            err.contains("mapper_parsing_exception: failed to parse field [x]"),
            "{err}"
        );
        check_response(&c, &answer(200, json!({"errors": false, "items": [ok]})), 1).unwrap();
    }

    #[test]
    fn http_errors_name_status_reason_and_hint() {
        let c = vars(&[("ROLLCI_ES_URL", "http://es")]).unwrap().unwrap();
        let body = json!({"error": {"type": "security_exception", "reason": "unable to authenticate"}, "status": 401});
        let err = check_response(&c, &answer(401, body), 1)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("HTTP 401 Unauthorized: security_exception: unable to authenticate"),
            "{err}"
        );
        assert!(err.contains("hint: check `ROLLCI_ES_USER`"), "{err}");
    }
}
