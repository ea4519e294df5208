//! Checks of a parsed lab file that its types cannot express: plain names, consistent
//! upgrade modes, probe and action shapes. Each error names the file, the line and the key.

use std::time::Duration;

use super::{Action, Config, Connection, ProbeConfig, ProbeKind, RallyConfig, UpgradeMode};

impl Config {
    pub(super) fn validate(&self) -> anyhow::Result<()> {
        let problem = |key: &str, msg: String| self.problem(key, msg);
        check_name(&self.lab.name).map_err(|m| problem("lab.name", m))?;
        check_release(&self.lab.from_release).map_err(|m| problem("lab.from_release", m))?;
        check_release(&self.lab.to_release).map_err(|m| problem("lab.to_release", m))?;
        for (i, probe) in self.probes.iter().enumerate() {
            check_probe(probe).map_err(|m| problem(&format!("probes[{i}]"), m))?;
        }
        for (i, p) in self.persistent.iter().enumerate() {
            check_name(&p.name).map_err(|m| problem(&format!("persistent[{i}]"), m))?;
        }
        if let Some(rally) = &self.verify.rally {
            check_rally(rally).map_err(|m| problem("verify.rally", m))?;
        }
        if let Some(logs) = &self.logs {
            logs.check().map_err(|m| problem("logs", m))?;
        }
        for (key, action) in self.actions() {
            check_action(action).map_err(|m| problem(&key, m))?;
        }
        match self.upgrade.mode {
            UpgradeMode::AllAtOnce if self.upgrade.action.is_none() => Err(problem(
                "upgrade.action",
                "missing: `mode = \"all-at-once\"` needs an `[upgrade.action]`".into(),
            )),
            UpgradeMode::AllAtOnce if !self.upgrade.components.is_empty() => Err(problem(
                "upgrade.components",
                "only allowed with `mode = \"rolling\"`".into(),
            )),
            UpgradeMode::Rolling if self.upgrade.components.is_empty() => Err(problem(
                "upgrade.components",
                "missing: `mode = \"rolling\"` needs at least one `[[upgrade.components]]`".into(),
            )),
            UpgradeMode::Rolling if self.upgrade.action.is_some() => Err(problem(
                "upgrade.action",
                "only allowed with `mode = \"all-at-once\"`".into(),
            )),
            _ => Ok(()),
        }
    }
}

/// Longest name: names become parts of file names (`<seq>-<step>-<action>-<attempt>.log`),
/// which Linux caps at 255 bytes.
pub const MAX_NAME: usize = 64;

/// Longest release: a release is a version or a series name, never a document.
pub const MAX_RELEASE: usize = 200;

/// A release reaches playbooks, commands' environment, reports and Jenkins as it is (shell
/// metacharacters included), so only what no process can carry is refused: control
/// characters (a NUL cannot be in an argument or a variable; a newline forges log lines).
pub fn check_release(release: &str) -> Result<(), String> {
    if release.is_empty() {
        return Err("is empty".into());
    }
    if release.chars().count() > MAX_RELEASE {
        return Err(format!(
            "is {} characters long; a release has at most {MAX_RELEASE}",
            release.chars().count()
        ));
    }
    match release.chars().find(|c| c.is_control()) {
        Some(c) => Err(format!(
            "{:?} holds the control character {:?}: a release is one line of text",
            release, c
        )),
        None => Ok(()),
    }
}

/// Names become file names and inventory keys: keep them plain and short.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.chars().count() > MAX_NAME {
        let start: String = name.chars().take(20).collect();
        return Err(format!(
            "`{start}…` is {} characters long; names have at most {MAX_NAME}",
            name.chars().count()
        ));
    }
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    if ok && !name.starts_with('.') {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a valid name (letters, digits, `-`, `_`, `.`; not starting with `.`)"
        ))
    }
}

fn check_probe(probe: &ProbeConfig) -> Result<(), String> {
    check_name(&probe.name)?;
    match probe.kind {
        ProbeKind::Http if probe.url.is_none() => Err("an `http` probe needs a `url`".into()),
        ProbeKind::Http if !probe.steps.is_empty() => {
            Err("`steps` belong to `kind = \"cycle\"`".into())
        }
        ProbeKind::Cycle if probe.steps.is_empty() => Err("a `cycle` probe needs `steps`".into()),
        ProbeKind::Cycle if probe.url.is_some() => {
            Err("a `cycle` probe has `steps`, not a `url`".into())
        }
        ProbeKind::Tcp
            if !probe
                .url
                .as_deref()
                .is_some_and(|u| u.starts_with("tcp://")) =>
        {
            Err("a `tcp` probe needs `url = \"tcp://HOST:PORT\"` (or `tcp://{host}`)".into())
        }
        ProbeKind::Tcp
            if !probe.steps.is_empty() || probe.body.is_some() || probe.auth.is_some() =>
        {
            Err("a `tcp` probe takes `url` and `banner` only".into())
        }
        ProbeKind::Command if probe.command.is_empty() => {
            Err("a `command` probe needs `command = [\"argv\", ...]`".into())
        }
        ProbeKind::Command
            if probe.url.is_some()
                || !probe.steps.is_empty()
                || probe.auth.is_some()
                || probe.connection.is_some()
                || !probe.hosts.is_empty() =>
        {
            Err("a `command` probe takes `command`, `interval`, `timeout` and `max_downtime` only (the client makes its own connections)".into())
        }
        _ if !probe.command.is_empty() && probe.kind != ProbeKind::Command => {
            Err("`command` belongs to `kind = \"command\"`".into())
        }
        ProbeKind::Tcp if probe.connection == Some(Connection::KeepAlive) => {
            Err("a `tcp` probe opens a new connection each time: `connection = \"keep-alive\"` is for `http` and `cycle` probes".into())
        }
        _ if probe.banner.is_some() && probe.kind != ProbeKind::Tcp => {
            Err("`banner` belongs to `kind = \"tcp\"`".into())
        }
        _ if probe.interval < Duration::from_millis(10) => Err("`interval` below 10ms".into()),
        _ if probe.timeout.is_zero() => Err("`timeout` must be above 0".into()),
        _ => Ok(()),
    }
}

fn check_rally(rally: &RallyConfig) -> Result<(), String> {
    if rally.command.is_empty() {
        return Err("`command` is an empty argv".into());
    }
    if !(rally.max_slowdown.is_finite() && rally.max_slowdown >= 1.0) {
        return Err(format!(
            "`max_slowdown` must be a ratio of at least 1.0 (after / before), not {}",
            rally.max_slowdown
        ));
    }
    Ok(())
}

fn check_action(action: &Action) -> Result<(), String> {
    check_name(&action.name)?;
    match (&action.playbook, &action.command) {
        (Some(_), Some(_)) => Err("set either `playbook` or `command`, not both".into()),
        (None, None) => Err("needs a `playbook` or a `command`".into()),
        (None, Some(argv)) if argv.is_empty() => Err("`command` is an empty argv".into()),
        _ if action.timeout == Some(Duration::ZERO) => Err("`timeout` must be above 0".into()),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe_error(probe: &str) -> String {
        let text = format!(
            "[lab]\nname = \"t\"\nfrom_release = \"A\"\nto_release = \"B\"\n[provider]\nkind = \"local\"\n[upgrade]\nmode = \"rolling\"\n[[upgrade.components]]\nname = \"c\"\ncommand = [\"true\"]\n[[probes]]\nname = \"p\"\n{probe}\n"
        );
        match Config::parse(&text, std::path::Path::new("lab.toml")) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn probe_connections_and_client_commands_are_checked() {
        assert_eq!(
            probe_error("url = \"http://{lb}/\"\nconnection = \"new\""),
            ""
        );
        assert_eq!(
            probe_error("kind = \"command\"\ncommand = [\"python3\", \"c.py\"]"),
            ""
        );
        let tcp = probe_error("kind = \"tcp\"\nurl = \"tcp://{lb}\"\nconnection = \"keep-alive\"");
        assert!(
            tcp.contains("`probes[0]`") && tcp.contains("new connection each time"),
            "{tcp}"
        );
        let bare = probe_error("kind = \"command\"");
        assert!(bare.contains("needs `command"), "{bare}");
        let mixed = probe_error("kind = \"command\"\ncommand = [\"c\"]\nurl = \"http://x/\"");
        assert!(mixed.contains("takes `command`"), "{mixed}");
        let stray = probe_error("url = \"http://{lb}/\"\ncommand = [\"c\"]");
        assert!(stray.contains("belongs to `kind = \"command\"`"), "{stray}");
        let typo = probe_error("url = \"http://{lb}/\"\nconnection = \"keepalive\"");
        assert!(typo.starts_with("lab.toml:"), "{typo}");
    }

    #[test]
    fn names_are_bounded_and_plain() {
        assert!(check_name("deploy-1.b_c").is_ok());
        assert!(check_name(&"n".repeat(MAX_NAME)).is_ok());
        let err = check_name(&"n".repeat(10_000)).unwrap_err();
        assert!(err.contains("10000 characters long"), "{err}");
        assert!(err.len() < 120, "the error does not echo the whole name");
        for bad in ["", ".hidden", "a/b", "a b", "é"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_over_long_action_name_names_its_key_and_line() {
        let long = "x".repeat(10_000);
        let text = format!(
            "[lab]\nname = \"t\"\nfrom_release = \"A\"\nto_release = \"B\"\n[provider]\nkind = \"local\"\n[upgrade]\nmode = \"rolling\"\n[[upgrade.components]]\nname = \"{long}\"\ncommand = [\"true\"]\n"
        );
        let err = Config::parse(&text, std::path::Path::new("lab.toml")).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("lab.toml:9: `upgrade.components[0]`:"),
            "{text}"
        );
        assert_eq!(crate::exit::kind_of(&err), crate::exit::Kind::Usage);
    }

    #[test]
    fn a_rally_slowdown_under_one_names_its_key_and_line() {
        let lab = "[lab]\nname = \"t\"\nfrom_release = \"A\"\nto_release = \"B\"\n[provider]\nkind = \"local\"\n[upgrade]\nmode = \"rolling\"\n[[upgrade.components]]\nname = \"c\"\ncommand = [\"true\"]\n";
        let text = format!("{lab}[verify.rally]\ncommand = [\"rally-run\"]\nmax_slowdown = 0.5\n");
        let err = Config::parse(&text, std::path::Path::new("lab.toml")).unwrap_err();
        let said = err.to_string();
        assert!(said.starts_with("lab.toml:12: `verify.rally`:"), "{said}");
        assert!(said.contains("at least 1.0"), "{said}");
        let text = format!("{lab}[verify.rally]\ncommand = [\"rally-run\"]\nmetric = \"p99\"\n");
        let said = Config::parse(&text, std::path::Path::new("lab.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            said.contains("lab.toml:14") && said.contains("metric"),
            "{said}"
        );
        let text = format!(
            "{lab}[verify.rally]\ncommand = [\"rally-run\"]\nmax_slowdown = 1.5\nnoise_floor = \"50ms\"\n"
        );
        let config = Config::parse(&text, std::path::Path::new("lab.toml")).unwrap();
        let rally = config.verify.rally.unwrap();
        assert_eq!(
            (rally.max_slowdown, rally.noise_floor.as_millis()),
            (1.5, 50)
        );
    }
}
