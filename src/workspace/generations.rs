//! The journal's previous generation (`state.json.prev`), kept on every save, and the errors
//! that tell a user how to recover when the current file cannot be read or written. rollci
//! never replaces a damaged journal by itself: which generation to trust is the user's call.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::exit::{Kind, fail};

/// Where the previous generation of the journal at `path` is kept.
pub fn previous_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".prev");
    PathBuf::from(name)
}

/// Before `path` is replaced, keeps what it holds now as the previous generation: a hard link
/// (no copy, no space) swapped in by rename, so the previous generation is always whole.
pub fn keep_previous(path: &Path) -> anyhow::Result<()> {
    let prev = previous_path(path);
    let mut tmp = prev.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    match std::fs::hard_link(path, &tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("failed to link `{}`", tmp.display())),
    }
    std::fs::rename(&tmp, &prev).with_context(|| format!("failed to keep `{}`", prev.display()))
}

/// A journal write that failed (disk full, read-only, gone): what is on disk, what to do.
pub fn not_saved(path: &Path, cause: anyhow::Error) -> anyhow::Error {
    fail(
        Kind::Infra,
        format!(
            "failed to save the state journal `{}`: {cause:#}\n  the file on disk is still its \
             last complete generation (rollci never leaves half a journal), without this change\n  \
             (hint: free space on its disk or make `{}` writable, then run `rollci cleanup`; \
             `rollci strays` finds what the journal could not record)",
            path.display(),
            path.parent().unwrap_or(Path::new(".")).display()
        ),
    )
}

/// A journal that does not parse. `summary` describes a generation that does (resource
/// counts), or `None`; the hint names the previous generation when it is readable.
pub fn unreadable(
    path: &Path,
    cause: &serde_json::Error,
    summary: impl Fn(&str) -> Option<String>,
) -> anyhow::Error {
    let prev = previous_path(path);
    let hint = match std::fs::read_to_string(&prev).ok().as_deref().map(&summary) {
        Some(Some(what)) => format!(
            "the previous generation `{p}` is readable ({what}) and lacks at most the last \
             change: keep the damaged file (`mv {c} {c}.damaged`), restore it (`cp {p} {c}`), \
             then run `rollci cleanup`; `rollci strays` finds what neither generation names",
            p = prev.display(),
            c = path.display()
        ),
        Some(None) => format!(
            "the previous generation `{}` is damaged too: find the lab's leftovers with \
             `rollci strays`",
            prev.display()
        ),
        None => format!(
            "there is no previous generation (`{}`): find the lab's leftovers with `rollci strays`",
            prev.display()
        ),
    };
    fail(
        Kind::Usage,
        format!(
            "state journal `{}` is damaged ({}: {cause}); rollci left it as it is\n  (hint: {hint})",
            path.display(),
            if cause.is_eof() {
                "truncated"
            } else {
                "not valid JSON of a journal"
            },
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_previous_generation_is_what_the_file_held_before() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        keep_previous(&path).unwrap();
        assert!(!previous_path(&path).exists(), "nothing to keep yet");
        std::fs::write(&path, "one").unwrap();
        keep_previous(&path).unwrap();
        crate::workspace::atomic::write(&path, b"two").unwrap();
        assert_eq!(
            std::fs::read_to_string(previous_path(&path)).unwrap(),
            "one"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "two");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 2, "no temp file left: {names:?}");
    }

    #[test]
    fn a_damaged_journal_names_the_readable_previous_generation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(previous_path(&path), "{}").unwrap();
        let cause = serde_json::from_str::<serde_json::Value>("{\"a\": [1,").unwrap_err();
        let err = unreadable(&path, &cause, |t| (t == "{}").then(|| "2 resources".into()));
        let text = format!("{err:#}");
        assert!(text.contains("truncated"), "{text}");
        assert!(text.contains("2 resources"), "{text}");
        assert!(text.contains(&format!("cp {}", previous_path(&path).display())));
        assert_eq!(crate::exit::kind_of(&err), Kind::Usage);
        let err = unreadable(&path, &cause, |_| None);
        assert!(format!("{err:#}").contains("damaged too"), "{err:#}");
    }
}
