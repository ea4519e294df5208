//! The lab file's `[jenkins]` table: how its Jenkinsfile and job are generated.

use std::time::Duration;

use serde::Deserialize;

/// `[jenkins]`: the generated Jenkinsfile and job.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JenkinsConfig {
    /// Agent label the pipeline runs on.
    #[serde(default = "default_agent_label")]
    pub agent_label: String,
    /// Name of the shared library (`@Library('…') _`) as configured in Jenkins.
    #[serde(default = "default_library")]
    pub library: String,
    /// Whole-build timeout.
    #[serde(default = "default_build_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Builds kept by the build discarder.
    #[serde(default = "default_keep_builds")]
    pub keep_builds: u32,
    /// Build result when the system under test fails a check (exit code 1).
    #[serde(default)]
    pub on_check_failure: CheckFailure,
    /// Jenkins credentials id (username/password) exported as `OS_USERNAME`/`OS_PASSWORD`.
    pub cloud_credentials: Option<String>,
    /// Jenkins credentials id (secret file: a `clouds.yaml`) written to a temporary file for
    /// each step that takes cloud credentials, its path exported as `OS_CLIENT_CONFIG_FILE`.
    pub clouds_credentials: Option<String>,
    /// Jenkins credentials id (username/password) exported as `ROLLCI_ES_USER`/`ROLLCI_ES_PASSWORD`.
    pub es_credentials: Option<String>,
    /// The choices of the job's `REGION` parameter (the reference pipeline's datacenter),
    /// passed to rollci as `ROLLCI_REGION`; the first is the default. Without it, a lab
    /// whose provider names a `region` gets that one choice.
    #[serde(default)]
    pub regions: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
pub enum CheckFailure {
    #[default]
    #[serde(rename = "UNSTABLE")]
    Unstable,
    #[serde(rename = "FAILURE")]
    Failure,
}

impl Default for JenkinsConfig {
    fn default() -> Self {
        JenkinsConfig {
            agent_label: default_agent_label(),
            library: default_library(),
            timeout: default_build_timeout(),
            keep_builds: default_keep_builds(),
            on_check_failure: CheckFailure::default(),
            cloud_credentials: None,
            clouds_credentials: None,
            es_credentials: None,
            regions: Vec::new(),
        }
    }
}

fn default_agent_label() -> String {
    "rollci".into()
}
fn default_library() -> String {
    "rollci".into()
}
fn default_build_timeout() -> Duration {
    Duration::from_secs(3 * 3600)
}
fn default_keep_builds() -> u32 {
    30
}
