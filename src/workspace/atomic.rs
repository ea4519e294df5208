//! Atomic file replacement: a temp file in the same folder, synced, then renamed over the
//! target, so a reader (or a killed rollci) sees the old file or the new one, never half.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::Context;

/// Writes `bytes` to `path` atomically, creating its folder if needed.
pub fn write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    replace(path, |mut file| file.write_all(bytes))
}

/// Like [`write`], with the content streamed by `fill` into a buffered writer, so a large
/// file is never held in memory whole.
pub fn write_with(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> anyhow::Result<()> {
    replace(path, |file| {
        let mut out = BufWriter::with_capacity(1 << 20, file);
        fill(&mut out).and_then(|()| out.flush())
    })
}

/// A temp file beside `path`, filled, synced, then renamed over it.
fn replace(path: &Path, fill: impl FnOnce(&File) -> std::io::Result<()>) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)
        .with_context(|| format!("failed to create `{}`", dir.display()))?;
    let tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("failed to create a temp file in `{}`", dir.display()))?;
    fill(tmp.as_file())
        .and_then(|()| tmp.as_file().sync_all())
        .with_context(|| format!("failed to write `{}`", path.display()))?;
    tmp.persist(path)
        .with_context(|| format!("failed to replace `{}`", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn replaces_the_whole_file_and_creates_folders() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/f.txt");
        super::write(&path, b"first, longer").unwrap();
        super::write(&path, b"second").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "second");
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1,
            "no temp left"
        );
    }
}
