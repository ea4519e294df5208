//! Finding a lab's own files (pidfiles, logs) by their extension.

use std::path::{Path, PathBuf};

/// Every regular file named `*.{extension}` under `dir`, in name order; symlinks are not
/// followed (a lab's link must not reach files elsewhere). None when `dir` is missing.
pub(super) fn by_extension<'a>(
    dir: &Path,
    extension: &'a str,
) -> impl Iterator<Item = PathBuf> + 'a {
    walkdir::WalkDir::new(dir)
        .sort_by_file_name()
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(walkdir::DirEntry::into_path)
        .filter(move |p| p.extension().is_some_and(|e| e == extension))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nested_files_by_extension_and_never_follows_a_link() {
        let lab = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(lab.path().join("a/b")).unwrap();
        std::fs::write(lab.path().join("a/b/node.pid"), "1").unwrap();
        std::fs::write(lab.path().join("z.pid"), "2").unwrap();
        std::fs::write(lab.path().join("z.pidx"), "3").unwrap();
        std::fs::write(outside.path().join("far.pid"), "4").unwrap();
        std::os::unix::fs::symlink(outside.path(), lab.path().join("link")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("far.pid"), lab.path().join("l.pid"))
            .unwrap();
        let found: Vec<PathBuf> = by_extension(lab.path(), "pid").collect();
        assert_eq!(
            found,
            vec![lab.path().join("a/b/node.pid"), lab.path().join("z.pid")]
        );
        assert_eq!(by_extension(&lab.path().join("gone"), "pid").count(), 0);
    }
}
