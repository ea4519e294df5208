//! Ansible: the inventory generated from the journal's hosts and `ansible-playbook` argv.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::json;

use crate::templates;
use crate::workspace::journal::State;

/// The inventory (YAML) of the hosts in the journal, grouped by their groups.
pub fn inventory(state: &State) -> anyhow::Result<String> {
    let mut names: Vec<&str> = Vec::new();
    for group in state.hosts.iter().flat_map(|h| &h.groups) {
        if !names.contains(&group.as_str()) {
            names.push(group);
        }
    }
    let groups: Vec<_> = names
        .iter()
        .map(|g| {
            let hosts: Vec<_> = state
                .hosts
                .iter()
                .filter(|h| h.groups.iter().any(|x| x == g))
                .map(host_entry)
                .collect();
            json!({ "name": g, "hosts": hosts })
        })
        .collect();
    let data = json!({ "lab": state.lab, "run_id": state.run_id, "groups": groups });
    let mut text = templates::render("inventory.yml.hbs", templates::INVENTORY, &data)?;
    if groups.is_empty() {
        text.push_str("    {}\n");
    }
    Ok(text)
}

/// A host as the inventory template sees it. An ssh host is named by its alias in the run's
/// ssh_config (which holds its address, port, user, key and jump), so Ansible's ssh and
/// rollci's reach it the same way.
fn host_entry(host: &crate::workspace::journal::Host) -> serde_json::Value {
    let mut entry = json!(host);
    entry["ansible_host"] = match host.connection.as_str() {
        "ssh" => json!(host.name),
        _ => json!(host.address),
    };
    entry
}

/// Writes the inventory into the workspace and returns its path.
pub fn write_inventory(state: &State, workspace: &Path) -> anyhow::Result<PathBuf> {
    let path = workspace.join("inventory.yml");
    let text = inventory(state)?;
    std::fs::write(&path, text).with_context(|| format!("failed to write `{}`", path.display()))?;
    Ok(path)
}

/// Arguments of one playbook run: the variables travel in a file (see [`vars_yaml`]), never as
/// text a shell or Ansible's `key=value` parser could split.
pub fn playbook_args(inventory: &Path, playbook: &Path, vars_file: &Path) -> Vec<OsString> {
    let mut at_file = OsString::from("@");
    at_file.push(vars_file);
    vec![
        "-i".into(),
        inventory.into(),
        "-e".into(),
        at_file,
        playbook.into(),
    ]
}

/// Extra variables as YAML with every string tagged `!unsafe`: Ansible templates extra vars,
/// so a release named `{{ lookup('pipe', 'id') }}` would otherwise run code. JSON scalars
/// are valid YAML, so each value is its JSON form.
pub fn vars_yaml(value: &serde_json::Value) -> String {
    use serde_json::Value;
    match value {
        Value::String(_) => format!("!unsafe {value}"),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(vars_yaml).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Object(map) => {
            let pairs: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}: {}", Value::from(k.as_str()), vars_yaml(v)))
                .collect();
            format!("{{{}}}", pairs.join(", "))
        }
        scalar => scalar.to_string(),
    }
}

/// Writes the variables file of one playbook run.
pub fn write_vars(vars: &serde_json::Value, path: &Path) -> anyhow::Result<()> {
    let text = format!(
        "# extra vars written by rollci; strings are !unsafe (never templated)\n{}\n",
        vars_yaml(vars)
    );
    std::fs::write(path, text).with_context(|| format!("failed to write `{}`", path.display()))
}

/// Environment that keeps Ansible's files inside the workspace and its output plain.
///
/// `TMPDIR` points into the workspace too: a module killed mid-run (a timeout, a cleanup)
/// leaves its `ansible_*_payload_*` folder behind, and that must not be in the agent's /tmp.
pub fn environment(workspace: &Path) -> Vec<(String, String)> {
    let tmp = temp_dir(workspace);
    let home = workspace.join("ansible");
    [
        ("TMPDIR", tmp.display().to_string()),
        ("ANSIBLE_HOME", home.display().to_string()),
        ("ANSIBLE_LOCAL_TEMP", tmp.display().to_string()),
        ("ANSIBLE_REMOTE_TEMP", tmp.display().to_string()),
        ("ANSIBLE_REMOTE_TMP", tmp.display().to_string()),
        ("ANSIBLE_NOCOLOR", "1".into()),
        ("ANSIBLE_FORCE_COLOR", "0".into()),
        ("ANSIBLE_RETRY_FILES_ENABLED", "0".into()),
        ("ANSIBLE_HOST_KEY_CHECKING", "True".into()),
        ("ANSIBLE_SSH_ARGS", String::new()),
        ("ANSIBLE_DEPRECATION_WARNINGS", "0".into()),
        ("PYTHONUNBUFFERED", "1".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .chain(utf8_locale())
    .collect()
}

/// The temporary folder of the tools rollci runs; [`environment`] names it, the caller
/// creates it.
pub fn temp_dir(workspace: &Path) -> std::path::PathBuf {
    workspace.join("ansible").join("tmp")
}

/// Ansible refuses to start without a UTF-8 locale, which Jenkins agents often lack.
fn utf8_locale() -> Option<(String, String)> {
    let current = ["LC_ALL", "LC_CTYPE", "LANG"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .unwrap_or_default()
        .to_lowercase();
    let is_utf8 = current.contains("utf-8") || current.contains("utf8");
    (!is_utf8).then(|| ("LC_ALL".to_string(), "C.UTF-8".to_string()))
}

/// What an `ansible-playbook` exit status means (per its documentation).
pub fn meaning(code: i32) -> &'static str {
    match code {
        0 => "ok",
        1 => "error",
        2 => "one or more hosts had a failed task",
        3 => "one or more hosts were unreachable",
        4 => "parser error or unreachable host",
        5 => "bad or incomplete options",
        99 => "interrupted by the user",
        250 => "unexpected error",
        _ => "unknown status",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workspace::journal::Host;

    #[test]
    fn every_temporary_folder_is_inside_the_workspace() {
        let ws = Path::new("/w/.rollci");
        let env = environment(ws);
        for key in [
            "TMPDIR",
            "ANSIBLE_LOCAL_TEMP",
            "ANSIBLE_REMOTE_TMP",
            "ANSIBLE_HOME",
        ] {
            let (_, value) = env.iter().find(|(k, _)| k == key).expect(key);
            assert!(Path::new(value).starts_with(ws), "{key}={value}");
        }
        let tmp = env.iter().find(|(k, _)| k == "TMPDIR").unwrap();
        assert_eq!(Path::new(&tmp.1), temp_dir(ws));
    }

    fn state() -> State {
        let mut s = State::new("demo", "A", "B");
        for (name, group, addr) in [("lb", "lb", "127.0.0.2"), ("node1", "nodes", "127.0.0.3")] {
            s.hosts.push(Host {
                name: name.into(),
                address: addr.into(),
                port: 8080,
                groups: vec![group.into()],
                connection: "local".into(),
                user: None,
                ports: Default::default(),
            });
        }
        s
    }

    #[test]
    fn inventory_groups_hosts_with_their_addresses() {
        let text = inventory(&state()).unwrap();
        assert!(text.contains("    \"nodes\":\n      hosts:\n        \"node1\":\n          ansible_host: \"127.0.0.3\""), "{text}");
        assert!(text.contains("rollci_port: 8080"), "{text}");
        assert!(text.contains("ansible_python_interpreter: \"/usr/bin/python3\""));
        assert!(!text.contains("rollci_ports"), "{text}");
    }

    #[test]
    fn named_ports_reach_the_inventory() {
        let mut s = state();
        s.hosts[1].ports.insert("keystone".into(), 5001);
        let text = inventory(&s).unwrap();
        assert!(text.contains("rollci_ports: {\"keystone\":5001}"), "{text}");
    }

    #[test]
    fn vars_are_unsafe_yaml_in_a_file() {
        let vars = json!({"rollci_release": "1; $(id) {{ 7*7 }}", "n": 2, "l": ["a\"b"], "m": {"k": null}});
        let text = vars_yaml(&vars);
        assert_eq!(
            text,
            r#"{"l": [!unsafe "a\"b"], "m": {"k": null}, "n": 2, "rollci_release": !unsafe "1; $(id) {{ 7*7 }}"}"#
        );
        let args = playbook_args(
            Path::new("i.yml"),
            Path::new("p.yml"),
            Path::new("/w/v.yml"),
        );
        assert_eq!(args[3], OsString::from("@/w/v.yml"));
    }
}
