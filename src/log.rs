//! A minimal stderr logger switched by `RSTCP_LOG` (off, error, warn, info,
//! debug, trace). Whatever the level, a failure to start the stack is
//! explained once ([`explain`]) unless `RSTCP_LOG=off`.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
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
/// `RSTCP_LOG=off`: not even setup failures are explained.
static SILENT: AtomicBool = AtomicBool::new(false);
static INIT: Once = Once::new();

/// The levels `RSTCP_LOG` accepts, for messages about a bad value.
pub const LEVELS: &str = "off, error, warn, info, debug or trace";

/// `RSTCP_LOG`'s value as a level number (0 for "off"); None if unknown.
pub fn parse_level(v: &str) -> Option<u8> {
    Some(match v {
        "off" => 0,
        "error" => 1,
        "warn" => 2,
        "info" => 3,
        "debug" => 4,
        "trace" => 5,
        _ => return None,
    })
}

fn init() {
    INIT.call_once(|| {
        let v = std::env::var("RSTCP_LOG").unwrap_or_default();
        SILENT.store(v == "off", Ordering::Relaxed);
        MAX.store(parse_level(&v).unwrap_or(0), Ordering::Relaxed);
    });
}

/// Explains why the stack could not start, and what to do: printed
/// whatever `RSTCP_LOG` says (unless "off"), since the errno alone
/// (ENODEV, EPERM…) rarely tells a newcomer enough.
pub fn explain(args: std::fmt::Arguments<'_>) {
    init();
    if !SILENT.load(Ordering::Relaxed) {
        let line = format!("rstcp: {args}\n");
        let _ = crate::sys::write(2, line.as_bytes());
    }
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
