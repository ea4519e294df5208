//! The machine the guests run on: this one, or a parent host (a `static` host, a rented
//! server) reached over the run's ssh. On a parent, virsh speaks `qemu+ssh://` through the
//! run's ssh_config (a wrapper names it: same pinned known_hosts, masters and jumps), the
//! image is copied once into a cache there (keyed by its folder's name, which is the
//! content key of scripts/guest-image), and disks, ports and console logs are made there
//! with commands whose every argument is quoted for the remote shell.

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use anyhow::Context;

use super::image::Image;
use crate::exit::{Kind, fail};
use crate::provider::interface::Destroyed;
use crate::provider::ssh::Ssh;

/// Commands share the parent's journaled master when it is up but never start one: cleanup
/// runs them after the masters are stopped, and must not leave a new one behind.
const NO_MASTER: &[&str] = &["ControlMaster=no"];

/// How long one remote command (not a copy) may take.
const REMOTE: Duration = Duration::from_secs(120);

pub enum Machine {
    Local,
    /// `host` is the parent's name in the run's ssh_config; `dir` the folder rollci owns
    /// there (`images/`, `runs/<run>/`).
    Remote {
        ssh: Ssh,
        host: String,
        dir: PathBuf,
    },
}

impl Machine {
    /// The libvirt URI: the lab's own on this machine, `qemu+ssh://` to the parent.
    pub fn uri(&self, configured: &str) -> anyhow::Result<String> {
        let Machine::Remote { ssh, host, .. } = self else {
            return Ok(configured.to_string());
        };
        let wrapper = ssh_wrapper(ssh)?;
        Ok(format!(
            "qemu+ssh://{host}/system?no_tty=1&command={}",
            percent(&wrapper.to_string_lossy())
        ))
    }

    /// Where this run's disks and console logs go (`local` on this machine).
    pub fn run_dir(&self, local: &Path, run: &str) -> PathBuf {
        match self {
            Machine::Local => local.to_path_buf(),
            Machine::Remote { dir, .. } => dir.join("runs").join(run),
        }
    }

    /// Runs `argv` on the parent, every argument quoted; its output (status checked).
    fn remote(&self, argv: &[&str], limit: Duration) -> anyhow::Result<Output> {
        let Machine::Remote { ssh, host, .. } = self else {
            anyhow::bail!("not a remote machine");
        };
        let line = shlex::try_join(argv.iter().copied())
            .map_err(|e| fail(Kind::Usage, format!("cannot quote {argv:?} for ssh: {e}")))?;
        let mut cmd = ssh.command(host, NO_MASTER);
        cmd.arg("--")
            .arg(line)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let out = output_within(cmd, limit)
            .with_context(|| format!("`{}` on `{host}`", argv.join(" ")))?;
        match out.status.success() {
            true => Ok(out),
            false => Err(fail(
                Kind::Infra,
                format!(
                    "`{}` on `{host}` failed ({}): {}",
                    argv.join(" "),
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            )),
        }
    }

    /// Whether `argv` succeeds on the parent (a test such as `test -w /dev/kvm`).
    pub fn succeeds(&self, argv: &[&str]) -> bool {
        self.remote(argv, REMOTE).is_ok()
    }

    pub fn mkdir(&self, dir: &Path) -> anyhow::Result<()> {
        match self {
            Machine::Local => std::fs::create_dir_all(dir)
                .with_context(|| format!("failed to create `{}`", dir.display())),
            Machine::Remote { .. } => {
                self.remote(&["mkdir", "-p", "--", &dir.to_string_lossy()], REMOTE)?;
                Ok(())
            }
        }
    }

    /// A copy-on-write overlay of the image's disk at `disk`.
    pub fn overlay(&self, image: &Image, disk: &Path) -> anyhow::Result<()> {
        match self {
            Machine::Local => image.overlay(disk),
            Machine::Remote { .. } => {
                let (base, disk) = (image.disk.to_string_lossy(), disk.to_string_lossy());
                let argv = [
                    "qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", &base, &disk,
                ];
                self.remote(&argv, REMOTE).map(|_| ())
            }
        }
    }

    /// Removes a file rollci made (a disk); "already gone" is success.
    pub fn remove(&self, path: &str) -> anyhow::Result<Destroyed> {
        match self {
            Machine::Local => match std::fs::remove_file(path) {
                Ok(()) => Ok(Destroyed::Now),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Destroyed::AlreadyGone),
                Err(e) => Err(e).with_context(|| format!("failed to remove `{path}`")),
            },
            Machine::Remote { .. } => self.rm("-f", path),
        }
    }

    /// `rm FLAG -- path` on the parent; whether there was something to remove.
    fn rm(&self, flag: &str, path: &str) -> anyhow::Result<Destroyed> {
        let there = self.remote(&["test", "-e", path], REMOTE).is_ok();
        self.remote(&["rm", flag, "--", path], REMOTE)?;
        Ok(match there {
            true => Destroyed::Now,
            false => Destroyed::AlreadyGone,
        })
    }

    /// Removes the run's folder on the parent (empty by then but for console logs).
    pub fn remove_dir(&self, path: &str) -> anyhow::Result<Destroyed> {
        match self {
            Machine::Local => Ok(Destroyed::AlreadyGone),
            Machine::Remote { dir, .. } => {
                // Only a run folder of rollci's own, never anything a typo could name.
                anyhow::ensure!(
                    Path::new(path).parent() == Some(&dir.join("runs")),
                    "`{path}` is not a run folder under `{}`",
                    dir.display()
                );
                self.rm("-rf", path)
            }
        }
    }

    /// A TCP port free on `address` of the machine now (QEMU binds it when the guest
    /// starts); on a parent, asked of its python3 (which Ansible needs there anyway).
    pub fn free_port(&self, address: Ipv4Addr) -> anyhow::Result<u16> {
        let Machine::Remote { .. } = self else {
            let listener = TcpListener::bind((address, 0))
                .with_context(|| format!("failed to find a free port on {address}"))?;
            return Ok(listener.local_addr()?.port());
        };
        let script =
            "import socket,sys;s=socket.socket();s.bind((sys.argv[1],0));print(s.getsockname()[1])";
        let out = self.remote(&["python3", "-c", script, &address.to_string()], REMOTE)?;
        let text = String::from_utf8_lossy(&out.stdout);
        text.trim().parse().map_err(|_| {
            fail(
                Kind::Infra,
                format!("no port from the parent's python3: {text:?}"),
            )
        })
    }

    /// The image as the machine sees it: on a parent, copied (once) into its cache.
    pub fn place(&self, image: Image) -> anyhow::Result<Image> {
        let Machine::Remote { ssh, host, dir } = self else {
            return Ok(image);
        };
        let key = image
            .disk
            .parent()
            .and_then(Path::file_name)
            .context("image folder")?;
        let cache = dir.join("images").join(key);
        let there = |name: &str| cache.join(name);
        let base = there("base.qcow2").to_string_lossy().into_owned();
        if self.remote(&["test", "-f", &base], REMOTE).is_err() {
            crate::say!(
                "    copying the guest image to `{host}:{}`",
                cache.display()
            );
            let partial = dir
                .join("images")
                .join(format!(".{}.partial", key.to_string_lossy()));
            self.remote(&["rm", "-rf", "--", &partial.to_string_lossy()], REMOTE)?;
            self.mkdir(&partial)?;
            for file in [&image.kernel, &image.initrd, &image.disk] {
                copy_to(ssh, host, file, &partial)?;
            }
            let (from, to) = (partial.to_string_lossy(), cache.to_string_lossy());
            self.remote(&["mv", "-T", "--", &from, &to], REMOTE)?;
        }
        Ok(Image {
            kernel: there("vmlinux"),
            initrd: there("initrd"),
            disk: there("base.qcow2"),
            cmdline: image.cmdline,
        })
    }

    /// A console log as a local file (copied from the parent), for the step's logs.
    pub fn fetch(&self, path: &Path, local: &Path) -> PathBuf {
        let Machine::Remote { ssh, host, .. } = self else {
            return path.to_path_buf();
        };
        if let Some(dir) = local.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let line = shlex::try_join(["cat", "--", &path.to_string_lossy()]);
        if let (Ok(line), Ok(file)) = (line, std::fs::File::create(local)) {
            let mut cmd = ssh.command(host, NO_MASTER);
            cmd.arg("--").arg(line).stdout(file).stderr(Stdio::null());
            let _ = cmd.status();
        }
        local.to_path_buf()
    }
}

/// Copies one file into a folder of the parent through ssh (`cat` there: no SFTP or scp
/// needed on the parent), the path quoted for its shell.
fn copy_to(ssh: &Ssh, host: &str, file: &Path, dir: &Path) -> anyhow::Result<()> {
    let name = file.file_name().context("a file name")?;
    let target = dir.join(name).to_string_lossy().into_owned();
    let quoted = shlex::try_quote(&target).map_err(|e| fail(Kind::Usage, format!("{e}")))?;
    let source = std::fs::File::open(file)
        .with_context(|| format!("failed to open `{}`", file.display()))?;
    let mut cmd = ssh.command(host, NO_MASTER);
    cmd.arg("--").arg(format!("cat > {quoted}")).stdin(source);
    let status = cmd.status().context("failed to run `ssh`")?;
    match status.success() {
        true => Ok(()),
        false => Err(fail(
            Kind::Infra,
            format!(
                "copying `{}` to `{host}:{target}` failed ({status})",
                file.display()
            ),
        )),
    }
}

/// A command's output, or an error when it is not done within `limit` (it is killed).
fn output_within(mut cmd: std::process::Command, limit: Duration) -> anyhow::Result<Output> {
    let child = cmd
        .stdin(Stdio::null())
        .spawn()
        .context("failed to run `ssh`")?;
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    match rx.recv_timeout(limit) {
        Ok(out) => Ok(out?),
        Err(_) => {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            Err(fail(
                Kind::Infra,
                format!("not done within {}", humantime::format_duration(limit)),
            ))
        }
    }
}

/// The script libvirt runs as its ssh: ssh with the run's ssh_config.
fn ssh_wrapper(ssh: &Ssh) -> anyhow::Result<PathBuf> {
    let path = ssh.config.with_file_name("ssh-for-libvirt");
    let config = shlex::try_quote(ssh.config.to_str().context("a non-UTF-8 workspace path")?)
        .map_err(|e| {
            fail(
                Kind::Usage,
                format!("cannot quote the ssh_config path: {e}"),
            )
        })?;
    let text = format!(
        "#!/bin/sh\n# Written by rollci: libvirt's qemu+ssh with the run's ssh_config.\nexec ssh -F {config} -o ControlMaster=no \"$@\"\n"
    );
    crate::workspace::atomic::write(&path, text.as_bytes())?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok(path)
}

/// A URI query value: everything but unreserved characters and `/` percent-encoded.
fn percent(value: &str) -> String {
    let keep = |b: u8| b.is_ascii_alphanumeric() || b"-._~/".contains(&b);
    value
        .bytes()
        .map(|b| match keep(b) {
            true => (b as char).to_string(),
            false => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remote_uri_names_the_parent_and_the_wrapper_percent_encoded() {
        let ws = tempfile::Builder::new()
            .prefix("a dir&x")
            .tempdir()
            .unwrap();
        let ssh = Ssh::new(ws.path());
        std::fs::create_dir_all(ssh.config.parent().unwrap()).unwrap();
        let machine = Machine::Remote {
            ssh: ssh.clone(),
            host: "infra-host".into(),
            dir: "/var/lib/rollci".into(),
        };
        let uri = machine.uri("qemu:///system").unwrap();
        assert!(
            uri.starts_with("qemu+ssh://infra-host/system?no_tty=1&command=/"),
            "{uri}"
        );
        assert!(uri.contains("a%20dir%26x") && !uri.contains(' '), "{uri}");
        let wrapper =
            std::fs::read_to_string(ssh.config.with_file_name("ssh-for-libvirt")).unwrap();
        assert!(
            wrapper.contains(&format!(
                "exec ssh -F '{}' -o ControlMaster=no \"$@\"",
                ssh.config.display()
            )),
            "{wrapper}"
        );
        assert_eq!(
            Machine::Local.uri("qemu:///system").unwrap(),
            "qemu:///system"
        );
        let runs = machine.run_dir(Path::new("/local"), "r1");
        assert_eq!(runs, Path::new("/var/lib/rollci/runs/r1"));
    }

    #[test]
    fn only_a_run_folder_may_be_removed_remotely() {
        let ws = tempfile::tempdir().unwrap();
        let machine = Machine::Remote {
            ssh: Ssh::new(ws.path()),
            host: "h".into(),
            dir: "/var/lib/rollci".into(),
        };
        let err = machine.remove_dir("/var/lib").unwrap_err().to_string();
        assert!(err.contains("not a run folder"), "{err}");
    }
}
