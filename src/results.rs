//! Smoke-test results: subunit v2 streams and JUnit XML read into [`evidence::Smoke`] form,
//! counted like `subunit-stats`, written back as JUnit XML.

use crate::cli::ResultsArgs;

/// `rollci results FILE [--junit OUT] [--json]`.
pub fn command(_args: &ResultsArgs) -> anyhow::Result<u8> {
    anyhow::bail!("`rollci results` is not built yet")
}
