//! What rollci prints. A reader that went away (`| head`, a closed Jenkins log pipe) must
//! never cost a step its journal or a lab its cleanup: a failed write marks the stream gone,
//! later lines are dropped, and the work goes on. Nothing here panics.

use std::fmt;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static STDOUT_GONE: AtomicBool = AtomicBool::new(false);
static STDERR_GONE: AtomicBool = AtomicBool::new(false);

/// Writes to stdout (flushed: lines reach a pipe as they come); false once its reader left.
pub fn out(args: fmt::Arguments) -> bool {
    write(&STDOUT_GONE, &mut std::io::stdout().lock(), args)
}

/// Writes to stderr; false once its reader left.
pub fn err(args: fmt::Arguments) -> bool {
    write(&STDERR_GONE, &mut std::io::stderr().lock(), args)
}

/// Raw bytes to stdout (a tool's output line), under the same rule.
pub fn out_bytes(bytes: &[u8]) -> bool {
    if STDOUT_GONE.load(Ordering::Relaxed) {
        return false;
    }
    let mut stdout = std::io::stdout().lock();
    let ok = stdout
        .write_all(bytes)
        .and_then(|()| stdout.flush())
        .is_ok();
    if !ok {
        STDOUT_GONE.store(true, Ordering::Relaxed);
    }
    ok
}

/// Whether stdout's reader went away.
pub fn stdout_gone() -> bool {
    STDOUT_GONE.load(Ordering::Relaxed)
}

fn write(gone: &AtomicBool, stream: &mut dyn Write, args: fmt::Arguments) -> bool {
    if gone.load(Ordering::Relaxed) {
        return false;
    }
    let ok = stream.write_fmt(args).and_then(|()| stream.flush()).is_ok();
    if !ok {
        gone.store(true, Ordering::Relaxed);
    }
    ok
}

/// `println!` that never panics (see the module).
#[macro_export]
macro_rules! say {
    () => {{ let _ = $crate::console::out(format_args!("\n")); }};
    ($($arg:tt)*) => {{ let _ = $crate::console::out(format_args!("{}\n", format_args!($($arg)*))); }};
}

/// `print!` that never panics.
#[macro_export]
macro_rules! show {
    ($($arg:tt)*) => {{ let _ = $crate::console::out(format_args!($($arg)*)); }};
}

/// `eprintln!` that never panics.
#[macro_export]
macro_rules! say_err {
    ($($arg:tt)*) => {{ let _ = $crate::console::err(format_args!("{}\n", format_args!($($arg)*))); }};
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Closed;

    impl Write for Closed {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_closed_stream_is_marked_gone_and_never_panics() {
        let gone = AtomicBool::new(false);
        assert!(!write(&gone, &mut Closed, format_args!("x")));
        assert!(gone.load(Ordering::Relaxed));
        let mut sink = Vec::new();
        assert!(
            !write(&gone, &mut sink, format_args!("y")),
            "dropped once gone"
        );
        assert!(sink.is_empty());
    }
}
