//! `virsh -c URI …`: the one way rollci talks to libvirt, locally (`qemu:///system`) or on a
//! parent host (`qemu+ssh://user@host/system`). Arguments are argv, never a shell line.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::Context;

/// The XML namespace of rollci's `<metadata>` element in a domain.
pub const NAMESPACE: &str = "https://rollci.dev/xmlns/libvirt/1";

pub struct Virsh {
    pub uri: String,
}

/// What a finished `virsh` call said.
pub struct Said {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Said {
    /// libvirt's words for an object that does not exist (`destroy`/`undefine` of a domain
    /// that is gone: success for a teardown).
    pub fn no_such_object(&self) -> bool {
        let e = &self.stderr;
        e.contains("Domain not found")
            || e.contains("failed to get domain")
            || e.contains("no domain with matching name")
            || e.contains("Network not found")
            || e.contains("failed to get network")
            || e.contains("no network with matching name")
    }

    /// `destroy` of a domain that is defined but not running.
    pub fn not_running(&self) -> bool {
        self.stderr.contains("domain is not running")
    }

    pub fn error(&self, what: &str) -> anyhow::Error {
        anyhow::anyhow!("`virsh {what}` failed: {}", self.stderr.trim())
    }
}

impl Virsh {
    pub fn new(uri: &str) -> Virsh {
        Virsh { uri: uri.into() }
    }

    /// Runs `virsh -c URI ARGS…` and collects what it said.
    pub fn call(&self, args: &[&str]) -> anyhow::Result<Said> {
        let out = Command::new("virsh")
            .arg("-c")
            .arg(&self.uri)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .context("failed to run `virsh` (hint: apt-get install -y libvirt-clients)")?;
        Ok(Said {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    /// `virsh ARGS…`, an error naming the command when it fails.
    pub fn call_ok(&self, args: &[&str]) -> anyhow::Result<Said> {
        let said = self.call(args)?;
        match said.ok {
            true => Ok(said),
            false => Err(said.error(&args.join(" "))),
        }
    }

    /// `virsh define FILE`.
    pub fn define(&self, xml: &Path) -> anyhow::Result<()> {
        let path = xml.to_string_lossy();
        let said = self.call(&["define", &path])?;
        match said.ok {
            true => Ok(()),
            false => Err(said.error(&format!("define {path}"))),
        }
    }

    /// `virsh start NAME`.
    pub fn start(&self, name: &str) -> anyhow::Result<()> {
        let said = self.call(&["start", name])?;
        match said.ok || said.stderr.contains("already active") {
            true => Ok(()),
            false => Err(said.error(&format!("start {name}"))),
        }
    }

    /// Stops (`destroy`: ACPI shutdown does not finish under TCG) and undefines `name`;
    /// false when there was no such domain.
    pub fn remove(&self, name: &str) -> anyhow::Result<bool> {
        let stopped = self.call(&["destroy", name])?;
        if !stopped.ok && stopped.no_such_object() {
            return Ok(false);
        }
        if !stopped.ok && !stopped.not_running() {
            return Err(stopped.error(&format!("destroy {name}")));
        }
        let undefined = self.call(&["undefine", name])?;
        match undefined.ok || undefined.no_such_object() {
            true => Ok(true),
            false => Err(undefined.error(&format!("undefine {name}"))),
        }
    }

    /// Every domain's name, running or not.
    pub fn names(&self) -> anyhow::Result<Vec<String>> {
        let said = self.call(&["list", "--all", "--name"])?;
        if !said.ok {
            return Err(said.error("list --all --name"));
        }
        let names = said.stdout.lines().map(str::trim).filter(|l| !l.is_empty());
        Ok(names.map(String::from).collect())
    }

    /// The `(lab, run)` of rollci's metadata element in domain `name`, when it has one.
    pub fn tag(&self, name: &str) -> anyhow::Result<Option<(String, String)>> {
        let said = self.call(&["metadata", name, NAMESPACE])?;
        if !said.ok {
            return Ok(None);
        }
        Ok(parse_tag(&said.stdout))
    }
}

/// `lab` and `run` attributes of `<run lab="…" run="…"/>` as virsh prints it.
fn parse_tag(xml: &str) -> Option<(String, String)> {
    let mut reader = quick_xml::Reader::from_str(xml);
    loop {
        match reader.read_event().ok()? {
            quick_xml::events::Event::Empty(e) | quick_xml::events::Event::Start(e) => {
                let attr = |key: &[u8]| {
                    let a = e.try_get_attribute(key).ok()??;
                    Some(a.unescape_value().ok()?.into_owned())
                };
                return Some((attr(b"lab")?, attr(b"run")?));
            }
            quick_xml::events::Event::Eof => return None,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tag_is_read_back_from_what_virsh_metadata_prints() {
        let printed = "<run xmlns=\"https://rollci.dev/xmlns/libvirt/1\" lab=\"vm\" run=\"20261202T1-7\" role=\"node1\"/>\n";
        assert_eq!(
            parse_tag(printed),
            Some(("vm".into(), "20261202T1-7".into()))
        );
        assert_eq!(parse_tag("<other/>"), None);
        assert_eq!(parse_tag(""), None);
    }

    #[test]
    fn libvirts_words_for_a_missing_domain_count_as_gone() {
        let said = |e: &str| Said {
            ok: false,
            stdout: String::new(),
            stderr: e.into(),
        };
        let missing = said(
            "error: failed to get domain 'x'\nerror: Domain not found: no domain with matching name 'x'",
        );
        assert!(missing.no_such_object());
        assert!(
            !said("error: Requested operation is not valid: domain is not running")
                .no_such_object()
        );
        assert!(
            said("error: Requested operation is not valid: domain is not running").not_running()
        );
    }

    /// Real virsh against libvirt's daemonless test driver (it holds the domain `test`).
    #[test]
    fn a_missing_domain_is_already_gone_and_the_listing_is_read() {
        let virsh = Virsh::new("test:///default");
        assert!(!virsh.remove("rollci-no-such-domain").unwrap());
        assert!(virsh.names().unwrap().contains(&"test".to_string()));
        assert_eq!(virsh.tag("test").unwrap(), None);
        let broken = Virsh::new("test:///nonexistent-file.xml");
        assert!(broken.names().is_err());
    }
}
