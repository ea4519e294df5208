//! SIGTERM (Jenkins' Abort, `kill`) and SIGINT (Ctrl-C) as requests to stop, not as sudden
//! death: a background thread counts them; the runner forwards the first to the running
//! tool's process group and the steps stop at their next boundary, so the journal is closed
//! as `aborted`, the report written and (in `run`) cleanup done. A second signal skips the
//! report and cuts the tool's grace short. While cleanup runs, signals are only counted:
//! it finishes what it started.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};

use crate::exit::{Kind, fail};

static COUNT: AtomicUsize = AtomicUsize::new(0);
static LAST: AtomicI32 = AtomicI32::new(0);
static SHIELDED: AtomicBool = AtomicBool::new(false);
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Starts counting SIGTERM and SIGINT instead of dying of them (once per process).
pub fn install() -> anyhow::Result<()> {
    if INSTALLED.swap(true, Ordering::SeqCst) {
        return Ok(());
    }
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
    ])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                LAST.store(signal, Ordering::SeqCst);
                COUNT.fetch_add(1, Ordering::SeqCst);
            }
        })?;
    Ok(())
}

/// How many stop signals arrived so far.
pub fn count() -> usize {
    COUNT.load(Ordering::SeqCst)
}

/// The last stop signal received, if any.
pub fn last() -> Option<i32> {
    match LAST.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// Whether work should stop now: a signal arrived and no cleanup is shielded from it.
pub fn pending() -> bool {
    count() > 0 && !SHIELDED.load(Ordering::SeqCst)
}

/// The error a step returns when it stops for a signal.
pub fn aborted() -> anyhow::Error {
    let name = match last() {
        Some(signal_hook::consts::SIGINT) => "SIGINT",
        _ => "SIGTERM",
    };
    fail(Kind::Aborted, format!("aborted by {name}"))
}

/// `Err(aborted())` when a signal is pending.
pub fn check() -> anyhow::Result<()> {
    if pending() { Err(aborted()) } else { Ok(()) }
}

/// Sleeps for `duration`, or until a stop signal (then `Err(aborted())`).
pub fn sleep(duration: std::time::Duration) -> anyhow::Result<()> {
    let end = std::time::Instant::now() + duration;
    while let Some(left) = end.checked_duration_since(std::time::Instant::now()) {
        check()?;
        std::thread::sleep(left.min(std::time::Duration::from_millis(50)));
    }
    check()
}

/// While the guard lives, signals do not stop work (cleanup must finish).
pub struct Shield(bool);

pub fn shield() -> Shield {
    Shield(SHIELDED.swap(true, Ordering::SeqCst))
}

impl Drop for Shield {
    fn drop(&mut self) {
        SHIELDED.store(self.0, Ordering::SeqCst);
    }
}
