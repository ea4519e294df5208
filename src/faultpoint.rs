//! Test-only stopping points, so the fault tests can kill rollci at an exact moment (between
//! "journaled as creating" and "the provider answered", say) without sleeping and hoping.
//!
//! When `ROLLCI_TEST_STOP_AT` names a point that rollci reaches (a prefix match on names like
//! `creating:local:process:node1`), rollci writes the point's name to `ROLLCI_TEST_STOP_FILE`
//! and waits there until a stop signal (SIGTERM/SIGINT) arrives, then goes on as it would
//! have, so the signal lands right at that point; SIGKILL simply ends it there. Points:
//! `creating:OWNER:KIND:NAME` (journaled, not yet made), `created:OWNER:KIND:NAME`,
//! `attempt:ACTION` (journaled, the tool not yet started), `step:STEP` and
//! `destroying:OWNER:KIND:NAME` (cleanup, before the owner is asked).
//!
//! Only debug builds (the tests' binary) read these variables; a release build has no hook.

use std::time::Duration;

/// Names the point the code has reached; blocks there when a test asked for it.
pub fn reached(point: impl FnOnce() -> String) {
    if cfg!(debug_assertions) {
        hold(point);
    }
}

fn hold(point: impl FnOnce() -> String) {
    let Ok(wanted) = std::env::var("ROLLCI_TEST_STOP_AT") else {
        return;
    };
    let point = point();
    if wanted.is_empty() || !point.starts_with(&wanted) {
        return;
    }
    if let Ok(file) = std::env::var("ROLLCI_TEST_STOP_FILE") {
        // Written whole then renamed, so the test never reads half a name.
        let tmp = format!("{file}.tmp");
        let _ = std::fs::write(&tmp, &point).and_then(|()| std::fs::rename(&tmp, &file));
    }
    let seen = crate::signals::count();
    while crate::signals::count() == seen {
        std::thread::sleep(Duration::from_millis(20));
    }
}
