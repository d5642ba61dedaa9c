//! The stat endpoint: a Unix socket per process, `<dir>/<pid>.sock`, that
//! answers every connection with a snapshot of the process's sockets and
//! counters and closes it. `rstcp-stat` reads them all, as `ss` reads the
//! kernel's tables. A filesystem socket, not an abstract one: those belong
//! to a network namespace, and rstcp programs run in many.
//!
//! The report is text, one record per line, fields `key=value`:
//!
//! ```text
//! rstcp-stat 1 pid=1234
//! socket fd=3 state=ESTABLISHED recvq=0 sendq=0 local=10.77.0.2:40001 peer=10.77.0.1:80 rtt_us=120 ...
//! counter name=active_opens value=1
//! end
//! ```
//!
//! `RSTCP_STAT=0` turns the endpoint off; `RSTCP_STAT_DIR` moves it.

use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use super::netstat::NetstatEntry;
use super::Sockets;
use crate::rs_log;

/// The version in the report's first line.
pub const REPORT_VERSION: u32 = 1;

/// Where endpoints live: `RSTCP_STAT_DIR`, else `/run/rstcp` for root,
/// `$XDG_RUNTIME_DIR/rstcp` or `/tmp/rstcp-<uid>` for others.
pub fn stat_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("RSTCP_STAT_DIR") {
        return PathBuf::from(d);
    }
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    if uid == 0 {
        return PathBuf::from("/run/rstcp");
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) => Path::new(&d).join("rstcp"),
        None => PathBuf::from(format!("/tmp/rstcp-{uid}")),
    }
}

/// The text report of `entries` and `counters` for process `pid`.
pub fn report(pid: i32, entries: &[NetstatEntry], counters: &[(&str, u64)]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "rstcp-stat {REPORT_VERSION} pid={pid}");
    for e in entries {
        let r = &e.row;
        let _ = write!(
            out,
            "socket fd={} state={} recvq={} sendq={} local={} peer={}",
            e.fd.unwrap_or(-1),
            r.state.name(),
            r.recv_q,
            r.send_q,
            r.local,
            r.peer
        );
        if let Some(i) = &r.info {
            let _ = write!(
                out,
                " rtt_us={} rttvar_us={} min_rtt_us={} rto_us={} mss={} cwnd={} ssthresh={} \
                 unacked={} sacked={} lost={} retransmits={} total_retrans={} ca_state={} \
                 snd_wnd={} rcv_space={}",
                i.rtt,
                i.rttvar,
                i.min_rtt,
                i.rto,
                i.snd_mss,
                i.snd_cwnd,
                i.snd_ssthresh,
                i.unacked,
                i.sacked,
                i.lost,
                i.retransmits,
                i.total_retrans,
                i.ca_state,
                i.snd_wnd,
                i.rcv_space
            );
        }
        out.push('\n');
    }
    for (name, value) in counters {
        let _ = writeln!(out, "counter name={name} value={value}");
    }
    out.push_str("end\n");
    out
}

/// A running endpoint; dropping it does not stop the thread (it lives as
/// long as the process), but [`StatEndpoint::remove`] takes the file away.
#[derive(Debug)]
pub struct StatEndpoint {
    path: PathBuf,
}

impl StatEndpoint {
    /// Serves `sockets` at `path` (replacing a stale file) from a thread of
    /// its own that takes no signals.
    pub fn start(
        path: PathBuf,
        sockets: impl std::ops::Deref<Target = Sockets> + Send + 'static,
    ) -> std::io::Result<StatEndpoint> {
        if let Some(dir) = path.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
        }
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        std::thread::Builder::new()
            .name("rstcp-stat".into())
            .spawn(move || {
                crate::runtime::block_signals();
                for conn in listener.incoming() {
                    let Ok(mut conn) = conn else {
                        continue;
                    };
                    let s = &*sockets;
                    let text = report(crate::sys::getpid(), &s.netstat(), &s.counters());
                    let _ = conn.write_all(text.as_bytes());
                }
            })?;
        Ok(StatEndpoint { path })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the socket file (at exit).
    pub fn remove(&self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Starts the process-wide endpoint for the global sockets, unless
/// `RSTCP_STAT=0`. A failure is logged, never fatal.
pub(super) fn start_global(sockets: &'static Sockets) -> Option<StatEndpoint> {
    if std::env::var("RSTCP_STAT").is_ok_and(|v| v == "0") {
        return None;
    }
    let path = stat_dir().join(format!("{}.sock", crate::sys::getpid()));
    match StatEndpoint::start(path, sockets) {
        Ok(e) => Some(e),
        Err(e) => {
            rs_log!(
                Warn,
                "stat endpoint not started ({e}); rstcp-stat will not see this process"
            );
            None
        }
    }
}
