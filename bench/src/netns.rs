//! Network namespaces that the benchmark makes and deletes: when dropped,
//! and on SIGINT / SIGTERM / SIGHUP (a thread waits for those signals,
//! deletes every namespace still registered and exits).
//!
//! Network safety (DESIGN.md): every address, route and device lives in one
//! of these namespaces; nothing here touches the root namespace.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::sync::Mutex;

/// Names of the namespaces alive now, for the signal thread.
static ALIVE: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// A namespace `rstcp-bench-<pid>-<tag>`, deleted when dropped.
#[derive(Debug)]
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// Creates the namespace with `lo` up.
    pub fn new(tag: &str) -> Result<Netns, String> {
        let name = format!("rstcp-bench-{}-{tag}", std::process::id());
        run(&["ip", "netns", "add", &name])?;
        ALIVE.lock().unwrap().push(name.clone());
        let ns = Netns { name };
        ns.exec(&["ip", "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Runs a command inside the namespace; an error carries its stderr.
    pub fn exec(&self, args: &[&str]) -> Result<String, String> {
        let mut full = vec!["ip", "netns", "exec", self.name.as_str()];
        full.extend_from_slice(args);
        run(&full)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        delete(&self.name);
        ALIVE.lock().unwrap().retain(|n| n != &self.name);
    }
}

/// Moves the calling thread into /run/netns/`name`.
///
/// # Panics
///
/// If the namespace cannot be entered.
pub fn enter(name: &str) {
    let path = format!("/run/netns/{name}");
    let file = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
    // SAFETY: setns on a descriptor we hold open; it affects this thread only.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    assert!(rc == 0, "setns {path}: {}", std::io::Error::last_os_error());
}

/// Runs `f` on a new thread inside namespace `name` and returns its result.
pub fn in_ns<T: Send + 'static>(name: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let name = name.to_owned();
    std::thread::spawn(move || {
        enter(&name);
        f()
    })
    .join()
    .expect("thread inside a namespace panicked")
}

fn delete(name: &str) {
    let _ = Command::new("ip")
        .args(["netns", "del", name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn run(args: &[&str]) -> Result<String, String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{}: {e}", args.join(" ")))?;
    if !out.status.success() {
        return Err(format!(
            "{} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Blocks SIGINT, SIGTERM and SIGHUP in this thread (and so in every thread
/// started after it) and starts a thread that waits for them, deletes the
/// namespaces and exits with 128 + the signal. Call first thing in main.
pub fn clean_up_on_signals() {
    // SAFETY: sigset operations on a local set; pthread_sigmask on this thread.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    };
    std::thread::spawn(move || {
        let mut sig = 0;
        // SAFETY: sigwait on a set we built; the signals are blocked everywhere.
        unsafe { libc::sigwait(&set, &mut sig) };
        eprintln!("\nrstcp-bench: signal {sig}: deleting the benchmark's namespaces");
        for name in ALIVE.lock().unwrap().iter() {
            delete(name);
        }
        std::process::exit(128 + sig);
    });
}
