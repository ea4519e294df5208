//! The lab's own logs (every `*.log` under the lab folder: the services', gunicorn's,
//! MariaDB's), copied into the run's logs folder before cleanup removes the lab: the first
//! thing anyone reads after a failed run, and the only record once the folder is gone.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use anyhow::Context;

use crate::provider::interface::KeptLogs as Kept;

/// A log longer than this keeps its end only (where a failure is).
const MAX_FILE: u64 = 16 << 20;
/// Past this many bytes or files in all, the rest is left out (and said so).
const MAX_TOTAL: u64 = 128 << 20;
const MAX_FILES: usize = 500;

/// Copies every regular `*.log` file under `lab` to the same relative path under `into`
/// (symlinks are not followed).
pub fn keep(lab: &Path, into: &Path) -> anyhow::Result<Kept> {
    let mut kept = Kept::default();
    if !lab.is_dir() {
        return Ok(kept);
    }
    for path in super::files::by_extension(lab, "log") {
        if kept.files >= MAX_FILES || kept.bytes >= MAX_TOTAL {
            kept.left_out += 1;
            continue;
        }
        let relative = path.strip_prefix(lab).unwrap_or(&path);
        kept.bytes += copy_tail(&path, &into.join(relative), MAX_FILE)?;
        kept.files += 1;
    }
    Ok(kept)
}

/// Copies the last `max` bytes of `from` (all of it when shorter) to `to`.
fn copy_tail(from: &Path, to: &Path, max: u64) -> anyhow::Result<u64> {
    let mut source =
        File::open(from).with_context(|| format!("failed to open `{}`", from.display()))?;
    let length = source.metadata()?.len();
    if length > max {
        source.seek(SeekFrom::Start(length - max))?;
    }
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("failed to create `{}`", parent.display()))?;
    }
    let mut target =
        File::create(to).with_context(|| format!("failed to create `{}`", to.display()))?;
    std::io::copy(&mut source.take(max), &mut target)
        .with_context(|| format!("failed to copy `{}`", from.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_are_copied_by_their_path_and_nothing_else_is() {
        let lab = tempfile::tempdir().unwrap();
        let into = tempfile::tempdir().unwrap();
        let node = lab.path().join("nodes/node1/keystone");
        std::fs::create_dir_all(&node).unwrap();
        std::fs::write(node.join("keystone.log"), "ERROR boom\n").unwrap();
        std::fs::write(node.join("keystone.conf"), "password = x\n").unwrap();
        let outside = tempfile::NamedTempFile::with_suffix(".log").unwrap();
        std::os::unix::fs::symlink(outside.path(), node.join("elsewhere.log")).unwrap();

        let kept = keep(lab.path(), into.path()).unwrap();

        assert_eq!(
            kept,
            Kept {
                files: 1,
                bytes: 11,
                left_out: 0
            }
        );
        let copy = into.path().join("nodes/node1/keystone/keystone.log");
        assert_eq!(std::fs::read_to_string(copy).unwrap(), "ERROR boom\n");
        assert!(
            !into
                .path()
                .join("nodes/node1/keystone/keystone.conf")
                .exists()
        );
        assert!(
            !into
                .path()
                .join("nodes/node1/keystone/elsewhere.log")
                .exists()
        );
    }

    #[test]
    fn a_long_log_keeps_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let from = dir.path().join("big.log");
        std::fs::write(&from, "old lines\nthe failure\n").unwrap();
        let to = dir.path().join("kept/big.log");
        assert_eq!(copy_tail(&from, &to, 12).unwrap(), 12);
        assert_eq!(std::fs::read_to_string(&to).unwrap(), "the failure\n");
    }

    #[test]
    fn no_lab_folder_keeps_nothing() {
        let into = tempfile::tempdir().unwrap();
        let kept = keep(&into.path().join("gone"), into.path()).unwrap();
        assert_eq!(kept, Kept::default());
    }
}
