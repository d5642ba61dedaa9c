//! Helpers shared by integration tests (`mod common;`).
//!
//! Network safety: every test that touches the network makes its own
//! namespace with [`Netns::new`], moves its thread into it with
//! [`Netns::enter`] before creating devices or sockets, and lets the
//! namespace be deleted when the `Netns` is dropped (also on panic). Nothing
//! here ever configures the root namespace.

#![allow(dead_code)]

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// Prefix of every namespace this harness creates; the sweep of stale
/// namespaces touches nothing else.
const PREFIX: &str = "rstcp-";

static NEXT_NS: AtomicU32 = AtomicU32::new(0);

/// True (after printing one line) when this process may not make network
/// namespaces and TUN devices, so the calling test should end at once:
/// `cargo test` without root runs what needs no privileges and skips the
/// rest. The line goes straight to stderr, past libtest's capture.
pub fn skip_without_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return false;
    }
    let thread = std::thread::current();
    let name = thread.name().unwrap_or("this test");
    let line = format!("skipped {name}: needs root (network namespaces and TUN devices)\n");
    // SAFETY: writing a buffer we own to fd 2.
    unsafe { libc::write(2, line.as_ptr().cast(), line.len()) };
    true
}

/// A network namespace created for one test and deleted when dropped (also on panic).
#[derive(Debug)]
pub struct Netns {
    /// The name under /run/netns, `rstcp-<tag>-<pid>-<counter>`.
    pub name: String,
    index: u32,
    next_dev: AtomicU32,
}

impl Netns {
    /// Creates `rstcp-<tag>-<pid>-<counter>` with `lo` up, after deleting
    /// namespaces that earlier, killed test runs left behind (those whose pid
    /// is no longer alive).
    ///
    /// # Panics
    ///
    /// If the namespace cannot be created (the tests need root).
    pub fn new(tag: &str) -> Netns {
        sweep_stale();
        let index = NEXT_NS.fetch_add(1, Ordering::Relaxed);
        let name = format!("{PREFIX}{tag}-{}-{index}", std::process::id());
        run(&["ip", "netns", "add", &name], true);
        let ns = Netns {
            name,
            index,
            next_dev: AtomicU32::new(0),
        };
        // Some peers (and `ip netns exec` tools) expect loopback to work.
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// Moves the CALLING THREAD into this namespace (setns on /run/netns/<name>), so that TUN devices and std::net sockets it creates afterwards, and threads/processes it spawns afterwards, live there. Libtest runs each #[test] on its own thread, so a test calls this first thing.
    ///
    /// # Panics
    ///
    /// If the namespace cannot be entered.
    pub fn enter(&self) {
        enter_netns(&self.name);
    }

    /// Runs a command inside the namespace (`ip netns exec <name> ...`) and
    /// returns its output.
    ///
    /// # Panics
    ///
    /// If the command cannot be run or exits unsuccessfully (the panic shows
    /// its stderr); use [`Netns::try_exec`] for commands allowed to fail.
    pub fn exec(&self, args: &[&str]) -> Output {
        self.exec_checked(args, true)
    }

    /// Like [`Netns::exec`], but returns the output whatever the exit status.
    pub fn try_exec(&self, args: &[&str]) -> Output {
        self.exec_checked(args, false)
    }

    fn exec_checked(&self, args: &[&str], check: bool) -> Output {
        let mut full = vec!["ip", "netns", "exec", self.name.as_str()];
        full.extend_from_slice(args);
        run(&full, check)
    }

    /// A `Command` that runs `cmd` inside the namespace, for callers that
    /// want to choose arguments and stdio themselves.
    pub fn command(&self, cmd: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name, cmd]);
        command
    }

    /// Spawns a long-running command inside the namespace, with stdin and
    /// stdout piped (read stdout if the command writes much, or it blocks)
    /// and stderr inherited.
    ///
    /// The caller kills and waits for the child; any process still inside
    /// the namespace when the `Netns` drops is killed then.
    ///
    /// # Panics
    ///
    /// If the command cannot be started.
    pub fn spawn(&self, cmd: &str, args: &[&str]) -> Child {
        self.command(cmd)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {cmd} in {}: {e}", self.name))
    }

    /// Loads an nftables ruleset (`nft -f -`) inside the namespace.
    ///
    /// # Panics
    ///
    /// If nft is missing (Debian package nftables) or refuses the rules.
    pub fn nft(&self, rules: &str) {
        let mut child = self
            .command("nft")
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .spawn()
            .expect("nft (Debian package nftables)");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(rules.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success(), "nft rules:\n{rules}");
    }

    /// A device name unique to this namespace/test, ≤ 15 chars, e.g. "rt<counter><pid%...>".
    pub fn dev_name(&self) -> String {
        let dev = self.next_dev.fetch_add(1, Ordering::Relaxed);
        // "rt" + 5 + "n" + 3 + "d" + 3 = 15 bytes at most: IFNAMSIZ - 1.
        format!(
            "rt{}n{}d{}",
            std::process::id() % 100_000,
            self.index % 1000,
            dev % 1000
        )
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Stray peers would keep the namespace (and its devices) alive after
        // its name is gone; never signal ourselves, in case our main thread
        // was moved in.
        let me = std::process::id();
        if let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .stderr(Stdio::null())
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok())
                .filter(|&p| p != me)
            {
                // SAFETY: plain syscall with integer arguments.
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            }
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Starts rstcp at 10.77.0.2/24 on a new TUN device in `ns`, whose kernel
/// side is 10.77.0.1; the calling thread must have entered `ns`. TIME-WAIT
/// lasts 1 s; `faults` (the `RSTCP_FAULTS` syntax) wrap the link; when
/// RSTCP_TEST_PCAP names a directory, the packets go to `<dir>/<tag>.pcap`.
/// Returns the sockets and the device's name.
///
/// # Panics
///
/// If the faults do not parse or the stack cannot start.
pub fn start_rstcp(
    ns: &Netns,
    tag: &str,
    faults: Option<&str>,
) -> (std::sync::Arc<rstcp::api::Sockets>, String) {
    start_rstcp_offload(ns, tag, faults, true)
}

/// [`start_rstcp`] with the TUN device's receive offload on or off.
pub fn start_rstcp_offload(
    ns: &Netns,
    tag: &str,
    faults: Option<&str>,
    offload: bool,
) -> (std::sync::Arc<rstcp::api::Sockets>, String) {
    let cfg = rstcp::runtime::RuntimeConfig {
        offload,
        tun: ns.dev_name(),
        addr: std::net::Ipv4Addr::new(10, 77, 0, 2),
        prefix_len: 24,
        msl: std::time::Duration::from_millis(500),
        faults: faults.map(|f| rstcp::link::FaultConfig::parse(f).unwrap()),
        pcap: std::env::var("RSTCP_TEST_PCAP")
            .ok()
            .map(|d| format!("{d}/{tag}.pcap")),
        ..rstcp::runtime::RuntimeConfig::default()
    };
    let s = rstcp::api::Sockets::start(&cfg).expect("start rstcp on a TUN device in the namespace");
    (std::sync::Arc::new(s), cfg.tun)
}

/// Moves the calling thread into the namespace /run/netns/`name`, as
/// [`Netns::enter`] does, for threads that hold only the name.
///
/// # Panics
///
/// If the namespace cannot be entered.
pub fn enter_netns(name: &str) {
    let path = format!("/run/netns/{name}");
    let file = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
    // SAFETY: setns on a descriptor we hold open; it affects this thread only.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        panic!("setns {path}: {}", std::io::Error::last_os_error());
    }
}

/// Runs `args[0]` with the rest as arguments; panics on failure if `check`.
fn run(args: &[&str], check: bool) -> Output {
    let out = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"));
    if check && !out.status.success() {
        panic!(
            "{args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

/// Deletes `rstcp-<tag>-<pid>-<counter>` namespaces whose creating process
/// is gone. Only names of exactly that shape are considered.
fn sweep_stale() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // Lines look like "name" or "name (id: 3)".
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(pid) = owner_pid(name) else {
            continue;
        };
        if !alive(pid) {
            let _ = Command::new("ip")
                .args(["netns", "del", name])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// The pid in `rstcp-<tag>-<pid>-<counter>`, or None for other names.
pub fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(PREFIX)?;
    let mut parts = rest.rsplitn(3, '-');
    let counter = parts.next()?;
    let pid = parts.next()?;
    let tag = parts.next()?;
    if tag.is_empty() || counter.parse::<u32>().is_err() {
        return None;
    }
    pid.parse().ok()
}

fn alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    // SAFETY: signal 0 only checks that the process exists.
    let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
    // EPERM means it exists but is not ours: leave its namespaces alone.
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Waits until `fd` is readable or `timeout_ms` passes; true if readable.
pub fn wait_readable(fd: std::os::fd::RawFd, timeout_ms: i32) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        return n == 1 && pfd.revents & libc::POLLIN != 0;
    }
}

/// The main of a test binary without libtest (harness = false): enters a
/// fresh namespace, points the process-wide stack at a TUN device there,
/// runs `cases` in order, prints libtest-like lines and the closing count,
/// and exits. A watchdog ends a hung run after `limit`, deleting the
/// namespace too.
pub fn run_cases(tag: &str, limit: std::time::Duration, setup: fn(), cases: &[(&str, fn())]) -> ! {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        println!(
            "{tag}: skipped {} tests: needs root (network namespaces and TUN devices)",
            cases.len()
        );
        std::process::exit(0);
    }
    let ns = Netns::new(tag);
    ns.enter();
    let ns_name = ns.name.clone();
    let tag_owned = tag.to_owned();
    std::thread::spawn(move || {
        std::thread::sleep(limit);
        println!("{tag_owned}: timed out after {limit:?}");
        let _ = Command::new("ip").args(["netns", "del", &ns_name]).status();
        std::process::exit(2);
    });
    std::env::set_var("RSTCP_TUN", ns.dev_name());
    std::env::set_var("RSTCP_ADDR", "10.77.0.2/24");
    setup();
    let mut failed = 0;
    for (name, case) in cases {
        match std::panic::catch_unwind(case) {
            Ok(()) => println!("test {name} ... ok"),
            Err(_) => {
                println!("test {name} ... FAILED");
                failed += 1;
            }
        }
    }
    println!("{tag}: {} passed, {failed} failed", cases.len() - failed);
    drop(ns);
    std::process::exit(if failed == 0 { 0 } else { 1 });
}
