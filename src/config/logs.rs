//! `[logs]`: the lab hosts' own log files, kept in the run's logs before teardown removes
//! them (fetched by Ansible from every host of the inventory, whatever the provider).

use std::time::Duration;

use serde::Deserialize;

/// `[logs]` of a lab file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogsConfig {
    /// Absolute folders searched, recursively, on every host (symlinks are not followed).
    pub folders: Vec<String>,
    /// File name patterns (shell globs) kept.
    #[serde(default = "default_patterns")]
    pub patterns: Vec<String>,
    /// A larger file keeps its last `max_file_mib` MiB.
    #[serde(default = "default_max_file_mib")]
    pub max_file_mib: u64,
    /// At most this many files per host, the most recently written first.
    #[serde(default = "default_max_files")]
    pub max_files: u64,
    /// The whole fetch; past it, the logs fetched so far stay and teardown goes on.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

fn default_patterns() -> Vec<String> {
    vec!["*.log".into()]
}
fn default_max_file_mib() -> u64 {
    16
}
fn default_max_files() -> u64 {
    200
}
fn default_timeout() -> Duration {
    Duration::from_secs(5 * 60)
}

impl LogsConfig {
    /// What the types cannot say: absolute folders, patterns that are file names, limits
    /// that keep something.
    pub fn check(&self) -> Result<(), String> {
        if self.folders.is_empty() {
            return Err("`folders` is empty: name at least one folder of the hosts".into());
        }
        for folder in &self.folders {
            if !folder.starts_with('/') || folder.contains(['\0', '\n']) {
                return Err(format!(
                    "`folders`: {folder:?} is not an absolute path on one line"
                ));
            }
            if folder.split('/').any(|part| part == "..") {
                return Err(format!("`folders`: {folder:?} climbs out with `..`"));
            }
        }
        if self.patterns.is_empty() {
            return Err("`patterns` is empty: leave it out to keep `*.log` files".into());
        }
        if let Some(bad) = self
            .patterns
            .iter()
            .find(|p| p.is_empty() || p.contains(['/', '\0', '\n']))
        {
            return Err(format!(
                "`patterns`: {bad:?} is not a file name pattern (no `/`, one line)"
            ));
        }
        if self.max_file_mib == 0 || self.max_files == 0 || self.timeout.is_zero() {
            return Err("`max_file_mib`, `max_files` and `timeout` must be above 0".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    const LAB: &str = "[lab]\nname = \"t\"\nfrom_release = \"A\"\nto_release = \"B\"\n[provider]\nkind = \"local\"\n[upgrade]\nmode = \"rolling\"\n[[upgrade.components]]\nname = \"c\"\ncommand = [\"true\"]\n";

    fn said(logs: &str) -> String {
        let text = format!("{LAB}[logs]\n{logs}");
        Config::parse(&text, std::path::Path::new("lab.toml"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn defaults_keep_log_files_of_the_named_folders() {
        let text = format!("{LAB}[logs]\nfolders = [\"/var/log/app\"]\n");
        let config = Config::parse(&text, std::path::Path::new("lab.toml")).unwrap();
        let logs = config.logs.unwrap();
        assert_eq!(logs.folders, ["/var/log/app"]);
        assert_eq!(logs.patterns, ["*.log"]);
        assert_eq!((logs.max_file_mib, logs.max_files), (16, 200));
    }

    #[test]
    fn bad_folders_and_patterns_name_the_key_and_line() {
        for (logs, words) in [
            ("folders = [\"var/log\"]\n", "not an absolute path"),
            ("folders = [\"/var/../etc\"]\n", "climbs out"),
            ("folders = []\n", "is empty"),
            (
                "folders = [\"/l\"]\npatterns = [\"a/*.log\"]\n",
                "not a file name",
            ),
            ("folders = [\"/l\"]\nmax_files = 0\n", "above 0"),
        ] {
            let said = said(logs);
            assert!(said.starts_with("lab.toml:12: `logs`:"), "{said}");
            assert!(said.contains(words), "{logs}: {said}");
        }
        let said = said("folders = [\"/l\"]\nfolder = \"/x\"\n");
        assert!(
            said.contains("lab.toml:14") && said.contains("folder"),
            "{said}"
        );
    }
}
