//! External tools a lab needs: located with `which`, each missing one named with its remedy.

use std::path::PathBuf;

use crate::exit::{Kind, fail};

/// One tool a lab needs and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tool {
    pub name: String,
    pub why: String,
}

impl Tool {
    pub fn new(name: &str, why: &str) -> Tool {
        Tool {
            name: name.to_string(),
            why: why.to_string(),
        }
    }

    /// Where it is, or a usable error naming it and how to install it.
    pub fn locate(&self) -> anyhow::Result<PathBuf> {
        which::which(&self.name).map_err(|_| {
            fail(
                Kind::Infra,
                format!(
                    "`{}` not found on PATH (needed for {})\n  (hint: {})",
                    self.name,
                    self.why,
                    install_hint(&self.name)
                ),
            )
        })
    }
}

/// How to get a tool on Debian, the platform rollci's agents run.
pub fn install_hint(name: &str) -> String {
    let base = name.rsplit('/').next().unwrap_or(name);
    match base {
        "ansible-playbook" | "ansible" => "install ansible-core in a venv and put it on PATH: \
             `python3 -m venv .venv && .venv/bin/pip install ansible-core && export PATH=$PWD/.venv/bin:$PATH` \
             (`make demo` does this)"
            .into(),
        "python3" => "`apt-get install -y python3`".into(),
        "haproxy" => "`apt-get install -y haproxy` (as root)".into(),
        "ssh" => "`apt-get install -y openssh-client`".into(),
        "virsh" => "`apt-get install -y libvirt-clients`".into(),
        other => format!("install `{other}` (e.g. `apt-get install -y {other}`) or fix PATH"),
    }
}

/// One line of `rollci doctor`'s answer.
pub struct Check {
    pub tool: Tool,
    pub found: Option<PathBuf>,
}

/// Checks each tool (deduplicated, in order).
pub fn check(tools: &[Tool]) -> Vec<Check> {
    let mut seen = std::collections::HashSet::new();
    tools
        .iter()
        .filter(|t| seen.insert(t.name.clone()))
        .map(|tool| Check {
            tool: tool.clone(),
            found: which::which(&tool.name).ok(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_tool_names_itself_and_remedy() {
        let err = Tool::new("ansible-playbook-not-here", "deploy")
            .locate()
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("`ansible-playbook-not-here` not found"),
            "{text}"
        );
        assert!(text.contains("hint: install"), "{text}");
        assert!(install_hint("ansible-playbook").contains("pip install ansible-core"));
    }

    #[test]
    fn present_tool_is_located() {
        assert!(Tool::new("sh", "tests").locate().is_ok());
    }
}
