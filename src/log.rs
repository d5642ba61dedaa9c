//! A minimal stderr logger switched by `RSTCP_LOG` (error, warn, info, debug, trace).

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Once;

/// Severity of a log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Level {
    /// Something failed.
    Error = 1,
    /// Something odd that the stack worked around.
    Warn = 2,
    /// Lifecycle events.
    Info = 3,
    /// Per-connection events.
    Debug = 4,
    /// Per-packet events.
    Trace = 5,
}

static MAX: AtomicU8 = AtomicU8::new(0);
static INIT: Once = Once::new();

fn init() {
    INIT.call_once(|| {
        let level = match std::env::var("RSTCP_LOG").as_deref() {
            Ok("error") => 1,
            Ok("warn") => 2,
            Ok("info") => 3,
            Ok("debug") => 4,
            Ok("trace") => 5,
            _ => 0,
        };
        MAX.store(level, Ordering::Relaxed);
    });
}

/// True if lines of `level` are printed.
pub fn enabled(level: Level) -> bool {
    init();
    level as u8 <= MAX.load(Ordering::Relaxed)
}

/// Prints one line (used through the `rs_log!` macro).
pub fn write(level: Level, args: std::fmt::Arguments<'_>) {
    let tag = match level {
        Level::Error => "error",
        Level::Warn => "warn",
        Level::Info => "info",
        Level::Debug => "debug",
        Level::Trace => "trace",
    };
    // A raw write to fd 2: the I/O thread logs too, and must not go through
    // the LD_PRELOAD shim's `write` (fd 2 might even be an rstcp socket).
    let line = format!("rstcp {tag}: {args}\n");
    let _ = crate::sys::write(2, line.as_bytes());
}

/// Logs a formatted line at a level if `RSTCP_LOG` enables it.
#[macro_export]
macro_rules! rs_log {
    ($level:ident, $($arg:tt)*) => {
        if $crate::log::enabled($crate::log::Level::$level) {
            $crate::log::write($crate::log::Level::$level, format_args!($($arg)*));
        }
    };
}
