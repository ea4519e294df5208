//! The documents of a run: one `run`, one `window` per outage window, one `smoke_test` per
//! smoke test of each phase, with ids derived from the run id so a re-push overwrites; and
//! the `_bulk` body that carries them.

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::reports::summary::Summary;
use crate::workspace::evidence::{Smoke, TestCase};

/// Smoke details (tracebacks) are cut to this many characters in a document.
const MAX_DETAILS: usize = 4000;

/// One document and its deterministic id.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub id: String,
    pub source: Value,
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
        source["prober_late"] = json!(w.prober_late);
        source["first_error"] = json!(w.first_error);
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
