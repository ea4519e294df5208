//! The HTTP side: one `_bulk` request, and its answer read into an outcome or an error
//! naming how many items failed and why.

use anyhow::Context;
use chrono::{DateTime, Utc};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use serde_json::Value;
use std::fmt;

use super::config::{Auth, EsConfig, usage};
use super::documents::{bulk_body, documents};
use crate::reports::summary::Summary;
use crate::workspace::evidence::Smoke;

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
    state: &crate::workspace::journal::State,
    config: &EsConfig,
) -> anyhow::Result<PushOutcome> {
    let summary = crate::reports::summary::summarize(state, workspace);
    let mut smoke = Vec::new();
    for phase in ["before", "after"] {
        let name = format!("smoke-{phase}.json");
        smoke.extend(crate::workspace::evidence::read::<Smoke>(workspace, &name)?);
    }
    push(&summary, &smoke, state.created, config)
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
    use crate::exit::Kind;
    use crate::reports::es::config::*;
    use crate::reports::summary::{PersistentSummary, ResourceSummary, SmokeSummary};
    use crate::secret::Secret;
    use crate::workspace::evidence::TestCase;
    use crate::workspace::evidence::{Counts, ServiceReport, Window};
    use serde_json::json;
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
            prober_late: false,
            first_error: Some(format!("unexpected status 503 at {s}")),
            connection: None,
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
            phases: Vec::new(),
            smoke: SmokeSummary::default(),
            rally: Default::default(),
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
        assert_eq!(docs[1].source["first_error"], "unexpected status 503 at 10");
        assert_eq!(docs[1].source["prober_late"], false);
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
