//! Pushing a run's results to Elasticsearch / OpenSearch: one `_bulk` request holding a
//! `run` document, one `window` document per outage window and one `smoke_test` document
//! per smoke test of each phase.
//!
//! Document ids are derived from the run id, the kind and a counter, so pushing the same
//! run again overwrites its documents instead of duplicating them. Secrets (password, API
//! key) live in [`Secret`], whose `Debug` is redacted, and never reach an error message.

mod client;
mod config;
mod documents;

pub use crate::secret::Secret;
pub use client::{PushOutcome, push, push_workspace};
pub use config::{Auth, DEFAULT_INDEX, EsConfig};
pub use documents::{Document, bulk_body, documents};
