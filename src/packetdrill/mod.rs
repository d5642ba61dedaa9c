//! packetdrill's shared-object interface: `packetdrill --so_filename=librstcp.so`
//! runs its scripts against this stack instead of the kernel's.
//!
//! packetdrill calls [`packetdrill_interface_init`] once per script; it
//! fills a table of functions (socket calls, `netdev_send` /
//! `netdev_receive` for packets, `usleep` / `gettimeofday` for time) whose
//! state lives behind the table's `userdata`, never in globals, since
//! init may run again in the same image. The stack runs on its own
//! runtime: packets packetdrill injects go through the stack at once in the
//! calling thread ([`crate::runtime::Shared::deliver`]); packets the stack
//! sends wait in an [`link::Outbox`] until netdev_receive takes them. Time
//! is real time: the table's gettimeofday and usleep are the system's, the
//! stack's timers run in its I/O thread, and each sent packet is stamped
//! with gettimeofday's clock. Blocking calls (packetdrill runs them on a
//! second thread) sleep on futexes, as packetdrill requires.
//!
//! Socket descriptors are real: each socket's number is that of an eventfd
//! held open for it, because at the end of a script packetdrill closes the
//! numbers of the sockets the script left open with the C library's close().
//!
//! `--so_flags` takes comma-separated `key=value` pairs: `local_ip`
//! (default 192.168.0.1), `netmask` (default 255.255.0.0) and `remote_ip`
//! (default 192.0.2.1, informational: every packet goes to
//! netdev_receive); unknown keys are ignored.
//!
//! This module is not part of the C header (cbindgen reads `src/ffi/` only):
//! its one export is for packetdrill, which declares the table itself.

pub mod link;
mod table;

use std::ffi::{c_char, CStr};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use crate::api::Sockets;
use crate::error::Result;
use crate::rs_log;
use crate::runtime::Runtime;
use crate::stack::StackConfig;
use link::{Outbox, OutboxLink, Sent};
pub use table::Interface;

/// Addresses from `--so_flags`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flags {
    /// The stack's address (`local_ip`).
    pub local_ip: Ipv4Addr,
    /// The prefix length (from `netmask`).
    pub prefix_len: u8,
    /// packetdrill's address (`remote_ip`).
    pub remote_ip: Ipv4Addr,
}

impl Default for Flags {
    fn default() -> Flags {
        Flags {
            local_ip: Ipv4Addr::new(192, 168, 0, 1),
            prefix_len: 16,
            remote_ip: Ipv4Addr::new(192, 0, 2, 1),
        }
    }
}

impl Flags {
    /// Parses `--so_flags` (None when packetdrill got none). A value that
    /// does not parse is reported and its default kept.
    pub fn parse(text: Option<&str>) -> Flags {
        let mut flags = Flags::default();
        for pair in text.unwrap_or("").split(',').map(str::trim) {
            let Some((key, value)) = pair.split_once('=') else {
                continue;
            };
            let ip = value.trim().parse::<Ipv4Addr>();
            let ok = match (key.trim(), ip) {
                ("local_ip", Ok(a)) => {
                    flags.local_ip = a;
                    true
                }
                ("remote_ip", Ok(a)) => {
                    flags.remote_ip = a;
                    true
                }
                ("netmask", Ok(m)) => match prefix_of(m) {
                    Some(p) => {
                        flags.prefix_len = p;
                        true
                    }
                    None => false,
                },
                ("local_ip" | "remote_ip" | "netmask", Err(_)) => false,
                _ => true,
            };
            if !ok {
                rs_log!(
                    Error,
                    "packetdrill: --so_flags: bad value in {pair:?}, default kept"
                );
            }
        }
        flags
    }
}

/// The prefix length of a contiguous netmask.
fn prefix_of(mask: Ipv4Addr) -> Option<u8> {
    let m = u32::from(mask);
    let len = m.leading_ones();
    (m.checked_shl(len).unwrap_or(0) == 0).then_some(len as u8)
}

/// The stack's configuration for a script: Linux's choices where the
/// scripts see them.
fn stack_config(flags: &Flags) -> StackConfig {
    let mut cfg = StackConfig {
        addr: flags.local_ip,
        prefix_len: flags.prefix_len,
        mtu: link::MTU,
        ..StackConfig::default()
    };
    // Window scale 8, as Linux's with the 15 MiB receive buffer maximum
    // of packetdrill's defaults.sh (the shift follows the buffer size).
    cfg.tcp.recv_buffer = 8 << 20;
    cfg.tcp.recv_buffer_max = 15 << 20;
    cfg
}

/// Everything one script's table works on (its `userdata`).
#[derive(Debug)]
pub struct Instance {
    sockets: Sockets,
    outbox: Arc<Outbox>,
}

/// How long netdev_receive waits when the stack has no timer that could
/// send something sooner.
const IDLE_WAIT: Duration = Duration::from_secs(2);
/// Timers further away than this are not waited for.
const LONGEST_WAIT: Duration = Duration::from_secs(30);
/// Slack after a timer's deadline for its packet to show up.
const TIMER_SLACK: Duration = Duration::from_millis(500);
/// How often a wait looks again at the stack's next deadline.
const RECHECK: Duration = Duration::from_millis(100);

impl Instance {
    /// A stack on a fresh runtime with the outbox as its link.
    pub fn new(flags: &Flags) -> Result<Instance> {
        let outbox = Arc::new(Outbox::default());
        let link = Box::new(OutboxLink(outbox.clone()));
        let runtime = Runtime::with_link(link, stack_config(flags))?;
        rs_log!(
            Info,
            "packetdrill: stack at {}/{}, peer {}",
            flags.local_ip,
            flags.prefix_len,
            flags.remote_ip
        );
        Ok(Instance {
            sockets: Sockets::new(runtime),
            outbox,
        })
    }

    /// The sockets the table's calls work on.
    pub fn sockets(&self) -> &Sockets {
        &self.sockets
    }

    /// A packet from packetdrill, through the stack before this returns.
    pub fn inject(&self, packet: &[u8]) {
        self.sockets.shared().deliver(packet);
    }

    /// The next packet the stack sends, waiting for it while the stack
    /// might still send one: until [`IDLE_WAIT`] has passed and no timer
    /// of the stack falls due within [`TIMER_SLACK`] — timers more than
    /// [`LONGEST_WAIT`] away do not count. None when it gives up, or the
    /// stack has failed.
    pub fn next_sent(&self) -> Option<Sent> {
        let start = std::time::Instant::now();
        let mut give_up = start + IDLE_WAIT;
        loop {
            let now = std::time::Instant::now();
            let shared = self.sockets.shared();
            if shared.is_dead() {
                return None;
            }
            let deadline = shared.lock().stack.poll_timeout().map(|t| shared.to_std(t));
            if let Some(d) = deadline.filter(|&d| d < start + LONGEST_WAIT) {
                give_up = give_up.max(d + TIMER_SLACK);
            }
            if now >= give_up {
                return self.outbox.take(now);
            }
            if let Some(sent) = self.outbox.take(give_up.min(now + RECHECK)) {
                return Some(sent);
            }
        }
    }
}

/// packetdrill's entry point: fills `ifc` with the table of a fresh stack
/// configured by `flags` (`--so_flags`, may be NULL). If the stack cannot
/// start, the table is still filled and its calls fail with EIO.
///
/// # Safety
/// `flags` is NULL or a NUL-terminated string; `ifc` points to a writable
/// [`Interface`].
#[no_mangle]
pub unsafe extern "C" fn packetdrill_interface_init(flags: *const c_char, ifc: *mut Interface) {
    if ifc.is_null() {
        return;
    }
    let made = std::panic::catch_unwind(|| {
        let text = (!flags.is_null())
            // SAFETY: packetdrill passes a NUL-terminated string or NULL.
            .then(|| {
                unsafe { CStr::from_ptr(flags) }
                    .to_string_lossy()
                    .into_owned()
            });
        Instance::new(&Flags::parse(text.as_deref()))
    });
    let instance = match made {
        Ok(Ok(i)) => Some(Box::new(i)),
        Ok(Err(e)) => {
            rs_log!(Error, "packetdrill: the stack did not start: {e}");
            None
        }
        Err(_) => {
            rs_log!(
                Error,
                "packetdrill: internal error (panic) starting the stack"
            );
            None
        }
    };
    // SAFETY: per this function's contract.
    unsafe { ifc.write(Interface::new(instance)) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_default_and_parse() {
        assert_eq!(Flags::parse(None), Flags::default());
        assert_eq!(Flags::parse(Some("")), Flags::default());
        let f = Flags::parse(Some(
            "local_ip=10.0.0.2, netmask=255.255.255.0,remote_ip=10.0.0.1,mtu=9000,junk",
        ));
        assert_eq!(f.local_ip, Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(f.prefix_len, 24);
        assert_eq!(f.remote_ip, Ipv4Addr::new(10, 0, 0, 1));
        // Bad values keep their defaults.
        let f = Flags::parse(Some("local_ip=nowhere,netmask=255.0.255.0"));
        assert_eq!(f, Flags::default());
    }

    #[test]
    fn netmask_prefixes() {
        assert_eq!(prefix_of(Ipv4Addr::new(255, 255, 0, 0)), Some(16));
        assert_eq!(prefix_of(Ipv4Addr::new(0, 0, 0, 0)), Some(0));
        assert_eq!(prefix_of(Ipv4Addr::new(255, 255, 255, 255)), Some(32));
        assert_eq!(prefix_of(Ipv4Addr::new(255, 255, 255, 128)), Some(25));
        assert_eq!(prefix_of(Ipv4Addr::new(255, 0, 255, 0)), None);
    }

    #[test]
    fn window_scale_is_linux_s() {
        assert_eq!(stack_config(&Flags::default()).tcp.window_shift(), 8);
    }
}
