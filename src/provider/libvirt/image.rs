//! The guest image a lab boots: a folder with an uncompressed kernel, an initrd, a qcow2
//! root disk (every VM gets a copy-on-write overlay of it) and the kernel command line.
//! `scripts/guest-image` builds one from Debian's packages, cached by its own content.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::Context;

use super::settings::ImageSource;
use crate::exit::{Kind, fail};

/// The files of an image folder.
#[derive(Debug, Clone)]
pub struct Image {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub disk: PathBuf,
    pub cmdline: String,
}

impl Image {
    /// `qemu-img create` of a copy-on-write overlay of `base` at `disk`.
    pub fn overlay(&self, disk: &Path) -> anyhow::Result<()> {
        if let Some(dir) = disk.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("failed to create `{}`", dir.display()))?;
        }
        let out = std::process::Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
            .arg(&self.disk)
            .arg(disk)
            .stdin(std::process::Stdio::null())
            .output()
            .context("failed to run `qemu-img` (hint: apt-get install -y qemu-utils)")?;
        match out.status.success() {
            true => Ok(()),
            false => Err(fail(
                Kind::Infra,
                format!(
                    "`qemu-img create` of `{}` failed: {}",
                    disk.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            )),
        }
    }

    /// The image of a folder, every file checked.
    pub fn from_dir(dir: &Path) -> anyhow::Result<Image> {
        let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
        let file = |name: &str| -> anyhow::Result<PathBuf> {
            let path = dir.join(name);
            match path.is_file() {
                true => Ok(path),
                false => Err(fail(
                    Kind::Infra,
                    format!(
                        "the guest image folder `{}` has no `{name}` (build one with \
                         scripts/guest-image)",
                        dir.display()
                    ),
                )),
            }
        };
        let cmdline_file = file("cmdline")?;
        let cmdline = std::fs::read_to_string(&cmdline_file)
            .with_context(|| format!("failed to read `{}`", cmdline_file.display()))?;
        Ok(Image {
            kernel: file("vmlinux")?,
            initrd: file("initrd")?,
            disk: file("base.qcow2")?,
            cmdline: cmdline.trim().to_string(),
        })
    }

    /// The lab's image: its folder, or the folder its command prints (last line of stdout;
    /// the command's progress goes to rollci's stderr).
    pub fn resolve(source: &ImageSource, base_dir: &Path) -> anyhow::Result<Image> {
        if let Some(dir) = &source.dir {
            return Image::from_dir(dir);
        }
        let argv = source.command.as_deref().unwrap_or_default();
        let (program, args) = argv.split_first().context("empty image command")?;
        let out = Command::new(program)
            .args(args)
            .current_dir(base_dir)
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| {
                fail(
                    Kind::Infra,
                    format!("failed to run the image command `{program}`: {e}"),
                )
            })?;
        if !out.status.success() {
            return Err(fail(
                Kind::Infra,
                format!("the image command `{program}` failed ({})", out.status),
            ));
        }
        let printed = String::from_utf8_lossy(&out.stdout);
        let dir = printed.lines().rev().find(|l| !l.trim().is_empty());
        let dir = dir.map(str::trim).ok_or_else(|| {
            fail(
                Kind::Infra,
                format!("the image command `{program}` printed no folder"),
            )
        })?;
        Image::from_dir(&base_dir.join(dir))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(files: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for f in files {
            std::fs::write(dir.path().join(f), "root=/dev/vda rw\n").unwrap();
        }
        dir
    }

    #[test]
    fn a_complete_folder_is_an_image_and_a_missing_file_is_named() {
        let dir = folder(&["vmlinux", "initrd", "base.qcow2", "cmdline"]);
        let image = Image::from_dir(dir.path()).unwrap();
        assert_eq!(image.cmdline, "root=/dev/vda rw");
        assert!(image.disk.ends_with("base.qcow2"));
        let dir = folder(&["vmlinux", "base.qcow2", "cmdline"]);
        let e = Image::from_dir(dir.path()).unwrap_err().to_string();
        assert!(e.contains("has no `initrd`"), "{e}");
    }

    #[test]
    fn the_command_prints_the_folder_and_a_failing_command_is_infra() {
        let dir = folder(&["vmlinux", "initrd", "base.qcow2", "cmdline"]);
        let source = ImageSource {
            dir: None,
            command: Some(vec![
                "sh".into(),
                "-c".into(),
                "echo building >&2; echo \"$0\"".into(),
                dir.path().to_string_lossy().into_owned(),
            ]),
        };
        let image = Image::resolve(&source, Path::new("/")).unwrap();
        assert!(image.kernel.starts_with(dir.path()));
        let source = ImageSource {
            dir: None,
            command: Some(vec!["false".into()]),
        };
        let e = Image::resolve(&source, Path::new("/")).unwrap_err();
        assert!(format!("{e:#}").contains("`false` failed"), "{e:#}");
    }
}
