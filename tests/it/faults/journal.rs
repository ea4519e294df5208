//! The journal under damage: truncated or corrupted between runs, its folder made read-only
//! or its disk filled while a run writes it. rollci must say what happened and how to
//! recover, never replace the journal by itself, keep the previous generation, and after the
//! recovery it names, `rollci cleanup` must still remove everything.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use super::local::{lab_with, leaks};
use super::{Row, logs, report, run_to_end, settle};
use crate::lab::Lab;

/// A small tmpfs mounted on a lab's workspace (root only), unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        if std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap()) != 0 {
            eprintln!("skipped: mounting a tmpfs needs root (CI runs as root)");
            return None;
        }
        std::fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(at)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mount tmpfs on {}", at.display());
        Some(Tmpfs(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // The lab's own Drop runs `rollci cleanup` after this; the tmpfs goes first only if
        // the test failed before it cleaned up, and then a lazy unmount still frees it.
        // Whatever is stacked on it too (the read-only bind of a failed case).
        let umount = || {
            let mut cmd = Command::new("umount");
            cmd.arg("-l")
                .arg(&self.0)
                .stderr(std::process::Stdio::null());
            cmd.status().is_ok_and(|s| s.success())
        };
        while umount() {}
    }
}

fn said(lab: &Lab) -> String {
    logs(lab)
}

#[test]
fn a_damaged_journal_is_named_kept_and_recovered_from_its_previous_generation() {
    let started = Instant::now();
    let lab = lab_with(&[]);
    assert_eq!(run_to_end(&lab, &[], &["provision"]), Some(0));
    assert_eq!(run_to_end(&lab, &[], &["deploy"]), Some(0));
    let path = lab.workspace().join("state.json");
    let prev = lab.workspace().join("state.json.prev");
    let whole = std::fs::read(&path).unwrap();
    let mut rows = Vec::new();
    for (case, damaged) in [
        ("truncated", whole[..whole.len() / 2].to_vec()),
        (
            "corrupted",
            [&whole[..100], b"\xff\x00garbage", &whole[110..]].concat(),
        ),
    ] {
        std::fs::write(&path, &damaged).unwrap();
        let out = lab.cmd(&["cleanup"]).output().unwrap();
        let text = String::from_utf8_lossy(&out.stderr).to_string();
        let mut errors = Vec::new();
        if out.status.code() != Some(2) {
            errors.push(format!("cleanup exited {:?}: {text}", out.status.code()));
        }
        if !text.contains("damaged") || !text.contains(&format!("cp {}", prev.display())) {
            errors.push(format!("the error does not name the recovery: {text}"));
        }
        if case == "truncated" && !text.contains("truncated") {
            errors.push(format!("a truncated journal is not called so: {text}"));
        }
        if std::fs::read(&path).unwrap() != damaged {
            errors.push("the damaged journal was replaced".into());
        }
        if !lab
            .cmd(&["status"])
            .output()
            .unwrap()
            .status
            .code()
            .eq(&Some(2))
        {
            errors.push("status of a damaged journal does not fail as a usage error".into());
        }
        rows.push(Row {
            case: format!("journal {case}: named, kept, not replaced"),
            exit: out.status.code(),
            leaks: vec![],
            journal_errors: errors,
            secs: started.elapsed().as_secs_f64(),
        });
    }
    // The recovery the message gives: the previous generation back, then cleanup.
    std::fs::copy(&prev, &path).unwrap();
    let (leaks, errors) = settle(&lab, &[], false, |s| leaks(&lab, s));
    rows.push(Row {
        case: "journal restored from .prev: cleanup leaves nothing".into(),
        exit: Some(0),
        leaks,
        journal_errors: errors,
        secs: started.elapsed().as_secs_f64(),
    });
    report("journal-damaged", &rows);
}

/// A run whose workspace is a small tmpfs that `spoil` (an action's argv) breaks after the
/// lab's server started; then `mend` repairs it and cleanup must leave nothing.
fn broken_mid_run(case: &str, size: &str, spoil: Vec<String>, mend: impl Fn(&Tmpfs)) -> Row {
    let started = Instant::now();
    let lab = lab_with(&[("spoil", spoil)]);
    let Some(fs) = Tmpfs::mount(&lab.workspace(), size) else {
        return Row {
            case: format!("{case}: skipped (not root)"),
            exit: None,
            leaks: vec![],
            journal_errors: vec![],
            secs: 0.0,
        };
    };
    let exit = run_to_end(&lab, &[], &["run"]);
    let text = said(&lab);
    let mut errors = Vec::new();
    if exit != Some(3) {
        errors.push(format!("run exited {exit:?}, not 3"));
    }
    if !text.contains("failed to save the state journal") || !text.contains("rollci cleanup") {
        errors.push("no error naming the journal and the way out".into());
    }
    if text.contains("panicked") {
        errors.push("rollci panicked".into());
    }
    let on_disk: serde_json::Value =
        serde_json::from_slice(&std::fs::read(lab.workspace().join("state.json")).unwrap())
            .unwrap_or(serde_json::Value::Null);
    if on_disk.is_null() {
        errors.push("the journal on disk does not parse".into());
    }
    mend(&fs);
    let (leaks, more) = settle(&lab, &[], true, |s| leaks(&lab, s));
    errors.extend(more);
    if !errors.is_empty() {
        eprintln!("{case}\n{text}");
    }
    // The tmpfs goes first: the lab's temp folder cannot be removed while it is mounted
    // (the lab's own cleanup already ran above, twice).
    drop(fs);
    drop(lab);
    Row {
        case: case.into(),
        exit,
        leaks,
        journal_errors: errors,
        secs: started.elapsed().as_secs_f64(),
    }
}

#[test]
fn a_journal_that_cannot_be_written_fails_clearly_and_cleanup_recovers() {
    let python = |code: &str| vec!["python3".to_string(), "-c".to_string(), code.to_string()];
    let fill = python(
        "import os\nf = open(os.path.join(os.environ['ROLLCI_LAB_DIR'], '..', 'filler'), 'wb')\n\
         try:\n    while True:\n        f.write(b'x' * 4096); f.flush()\nexcept OSError:\n    pass",
    );
    let full = broken_mid_run("journal: disk full during the run", "4m", fill, |fs| {
        std::fs::remove_file(fs.0.join("filler")).unwrap();
    });
    // A read-only bind mount stacked on the workspace: a plain `remount,ro` is refused
    // while rollci holds its lock file open for writing.
    let freeze = python(
        "import os, subprocess\nw = os.path.dirname(os.environ['ROLLCI_LAB_DIR'])\n\
         subprocess.run(['mount', '--bind', w, w], check=True)\n\
         subprocess.run(['mount', '-o', 'remount,bind,ro', w], check=True)",
    );
    let read_only = broken_mid_run(
        "journal: made read-only during the run",
        "16m",
        freeze,
        |fs| {
            assert!(
                Command::new("umount")
                    .arg(&fs.0)
                    .status()
                    .unwrap()
                    .success()
            );
        },
    );
    report("journal-unwritable", &[full, read_only]);
}
