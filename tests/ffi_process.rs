//! What happens to the process-wide stack across fork() and after a panic
//! in an application thread: things that end a process's stack, so they get
//! a process of their own (harness = false), in a namespace made for it.

mod common;

use std::ffi::c_void;
use std::io::{ErrorKind, Read, Write};
use std::mem::size_of;
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

use libc::{sockaddr, sockaddr_in, socklen_t};
use rstcp::ffi::*;

const KERNEL: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn connect_to(port: u16) -> i32 {
    connect_to_host(KERNEL, port)
}

fn connect_to_host(host: Ipv4Addr, port: u16) -> i32 {
    let fd = rs_socket(libc::AF_INET, libc::SOCK_STREAM, 0);
    assert!(fd >= 0, "rs_socket: errno {}", errno());
    let a = sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(host).to_be(),
        },
        sin_zero: [0; 8],
    };
    let len = size_of::<sockaddr_in>() as socklen_t;
    let r = unsafe { rs_connect(fd, &a as *const sockaddr_in as *const sockaddr, len) };
    assert_eq!(r, 0, "rs_connect: errno {}", errno());
    fd
}

fn send(fd: i32, data: &[u8]) -> isize {
    unsafe { rs_send(fd, data.as_ptr() as *const c_void, data.len(), 0) }
}

fn recv(fd: i32, buf: &mut [u8]) -> isize {
    unsafe { rs_recv(fd, buf.as_mut_ptr() as *mut c_void, buf.len(), 0) }
}

/// Waits for child `pid` to exit, at most `limit`; its exit status.
fn wait_child(pid: libc::pid_t, limit: Duration) -> Option<i32> {
    let until = Instant::now() + limit;
    loop {
        let mut status = 0;
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            return libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
        }
        if Instant::now() >= until {
            unsafe { libc::kill(pid, libc::SIGKILL) };
            unsafe { libc::waitpid(pid, &mut status, 0) };
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn a_forked_child_leaves_the_parents_connections_alone() {
    let kl = TcpListener::bind((KERNEL, 6100)).unwrap();
    let fd = connect_to(6100);
    let (mut k, _) = kl.accept().unwrap();
    assert_eq!(send(fd, b"before"), 6);
    let mut buf = [0u8; 6];
    k.read_exact(&mut buf).unwrap();

    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        // The child: calls on the parent's socket fail cleanly, closing its
        // copy succeeds, and exit() runs no linger for the parent's stack.
        let code = if send(fd, b"child") != -1 || errno() != libc::EIO {
            10
        } else if rs_socket(libc::AF_INET, libc::SOCK_STREAM, 0) != -1 || errno() != libc::EIO {
            11
        } else if rs_close(fd) != 0 {
            12
        } else {
            0
        };
        unsafe { libc::exit(code) };
    }
    assert_eq!(
        wait_child(pid, Duration::from_secs(5)),
        Some(0),
        "the child failed a check or hung at exit"
    );
    // The kernel peer saw neither FIN nor RST nor data from the child.
    k.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut one = [0u8; 16];
    match k.read(&mut one) {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!("the peer saw something after the fork: {other:?}"),
    }
    // The parent's connection works on, both ways, and closes normally.
    assert_eq!(send(fd, b"parent"), 6);
    k.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    k.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"parent");
    k.write_all(b"reply").unwrap();
    let mut got = [0u8; 5];
    assert_eq!(recv(fd, &mut got), 5);
    assert_eq!(&got, b"reply");
    assert_eq!(rs_close(fd), 0);
    assert_eq!(k.read(&mut one).unwrap(), 0, "FIN from the parent's close");
}

fn a_panic_in_an_application_thread_fails_the_stack() {
    let kl = TcpListener::bind((KERNEL, 6101)).unwrap();
    let fd = connect_to(6101);
    let (_k, _) = kl.accept().unwrap();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 8];
        let r = recv(fd, &mut buf);
        (r, errno())
    });
    std::thread::sleep(Duration::from_millis(200));
    // A bug inside a call, caught at the C boundary as every rs_* call is.
    let r: i32 = rstcp::ffi::guard::call("test", || panic!("injected fault"));
    assert_eq!((r, errno()), (-1, libc::EIO));
    let until = Instant::now() + Duration::from_secs(5);
    while !reader.is_finished() {
        assert!(Instant::now() < until, "the blocked recv never ended");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(reader.join().unwrap(), (-1, libc::EIO));
    assert_eq!(rs_socket(libc::AF_INET, libc::SOCK_STREAM, 0), -1);
    assert_eq!(errno(), libc::EIO);
}

/// Runs this test program again as a child in `mode` (see [`child`]),
/// with `env` set; its exit code and stderr.
fn run_child(mode: &str, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .env("RSTCP_FFI_CHILD", mode)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// In a child: one connection to PEER_ADDR:PEER_PORT that sends `data`
/// and closes, waited for until it is in TIME-WAIT (FIN sent and
/// acknowledged, the peer's FIN answered). Err: the step that failed.
fn one_connection(data: &[u8]) -> Result<(), i32> {
    let port: u16 = std::env::var("PEER_PORT").unwrap().parse().unwrap();
    let fd = connect_to_host(std::env::var("PEER_ADDR").unwrap().parse().unwrap(), port);
    if send(fd, data) != data.len() as isize || rs_close(fd) != 0 {
        return Err(30);
    }
    let s = rstcp::api::global().unwrap();
    let until = Instant::now() + Duration::from_secs(5);
    while s
        .netstat()
        .iter()
        .any(|e| e.row.state != rstcp::tcp::State::TimeWait)
    {
        if Instant::now() > until {
            return Err(31);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

/// What a child started by [`run_child`] does; its exit code says which
/// step went wrong (0: all as expected).
fn child(mode: &str) -> i32 {
    let socket = || rs_socket(libc::AF_INET, libc::SOCK_STREAM, 0);
    match mode {
        // RSTCP_ADDR is malformed: calls fail with EINVAL (without trying
        // again each time), and rs_init with a good address starts it.
        "bad_variable_then_init" => {
            if socket() != -1 || errno() != libc::EINVAL {
                return 10;
            }
            if socket() != -1 || errno() != libc::EINVAL {
                return 11;
            }
            let addr = c"10.77.9.2/24";
            if rs_init(std::ptr::null(), addr.as_ptr(), std::ptr::null()) != 0 {
                return 12;
            }
            let fd = socket();
            if fd < 0 || rs_close(fd) != 0 {
                return 13;
            }
            0
        }
        // The device is held by the parent: EBUSY, explained.
        "busy_device" => {
            if socket() != -1 || errno() != libc::EBUSY {
                return 20;
            }
            0
        }
        // Run without CAP_NET_ADMIN (as nobody): EPERM, explained.
        "no_permission" => {
            if socket() != -1 || errno() != libc::EPERM {
                return 21;
            }
            0
        }
        // Run where /dev/net/tun is missing: ENODEV, explained.
        "no_tun_device" => {
            if socket() != -1 || errno() != libc::ENODEV {
                return 22;
            }
            0
        }
        // With RSTCP_PCAP set: a connection to the parent's listener sends
        // a little, closes, and the process prints how many packets its
        // stack moved, then dies of SIGTERM's default action (no atexit).
        "capture_then_sigterm" => {
            if let Err(code) = one_connection(b"to be captured") {
                return code;
            }
            let counters = rstcp::api::global().unwrap().counters();
            let count = |name| counters.iter().find(|c| c.0 == name).unwrap().1;
            println!(
                "packets {}",
                count("packets_received") + count("packets_sent")
            );
            use std::io::Write as _;
            let _ = std::io::stdout().flush();
            unsafe { libc::raise(libc::SIGTERM) };
            32
        }
        // One short connection to the parent's listener, closed to
        // TIME-WAIT, for the log.
        "one_connection" => match one_connection(b"logged") {
            Ok(()) => 0,
            Err(code) => code,
        },
        // The stack runs; its stat endpoint is (or, RSTCP_STAT=0, is not)
        // in RSTCP_STAT_DIR.
        "stat_endpoint" => {
            let fd = socket();
            if fd < 0 {
                return 40;
            }
            let dir = std::env::var("RSTCP_STAT_DIR").unwrap();
            let file = std::path::Path::new(&dir).join(format!("{}.sock", std::process::id()));
            let want = std::env::var("RSTCP_STAT").as_deref() != Ok("0");
            if file.exists() != want {
                return 41;
            }
            0
        }
        _ => 99,
    }
}

fn a_failed_start_is_explained_once_and_rs_init_can_retry() {
    let (code, err) = run_child(
        "bad_variable_then_init",
        &[("RSTCP_ADDR", "bogus"), ("RSTCP_TUN", "rstcpretry0")],
    );
    assert_eq!(code, Some(0), "child: {err}");
    let said = err.matches("RSTCP_ADDR=\"bogus\" is not valid").count();
    assert_eq!(said, 1, "explained once: {err}");
    assert!(
        err.contains("address/prefix"),
        "says what is accepted: {err}"
    );
    let dev = std::env::var("RSTCP_TUN").unwrap();
    let (code, err) = run_child("busy_device", &[("RSTCP_TUN", &dev)]);
    assert_eq!(code, Some(0), "child: {err}");
    assert!(err.contains("in use by another process"), "{err}");
    // Without CAP_NET_ADMIN: the commands that make the device beforehand.
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .env("RSTCP_FFI_CHILD", "no_permission")
        .env("RSTCP_TUN", "rstcpnoperm0")
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "as nobody: {err}");
    assert!(
        err.contains("needs CAP_NET_ADMIN") && err.contains("ip tuntap add dev rstcpnoperm0"),
        "{err}"
    );
    // No /dev/net/tun (hidden under an empty tmpfs in a mount namespace).
    let out = std::process::Command::new("unshare")
        .args([
            "--mount",
            "sh",
            "-c",
            "mount -t tmpfs none /dev/net && exec \"$0\"",
        ])
        .arg(std::env::current_exe().unwrap())
        .env("RSTCP_FFI_CHILD", "no_tun_device")
        .env("RSTCP_TUN", "rstcpnotun0")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "without /dev/net/tun: {err}");
    assert!(
        err.contains("no /dev/net/tun: load the tun module"),
        "{err}"
    );
    // RSTCP_LOG=off silences even that.
    let (code, err) = run_child("busy_device", &[("RSTCP_TUN", &dev), ("RSTCP_LOG", "off")]);
    assert_eq!((code, err.as_str()), (Some(0), ""));
}

fn a_capture_is_complete_when_sigterm_ends_the_program() {
    // The child makes a device of its own, 10.77.8.0/24, in this namespace.
    let kl = TcpListener::bind(("0.0.0.0", 6300)).unwrap();
    let accepting = std::thread::spawn(move || {
        let (mut k, _) = kl.accept().unwrap();
        let mut got = Vec::new();
        k.read_to_end(&mut got).unwrap();
        got
    });
    let pcap = std::env::temp_dir().join(format!("rstcp-capture-{}.pcap", std::process::id()));
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .env("RSTCP_FFI_CHILD", "capture_then_sigterm")
        .env("RSTCP_TUN", "rstcpcap0")
        .env("RSTCP_ADDR", "10.77.8.2/24")
        .env("RSTCP_PCAP", &pcap)
        .env("PEER_ADDR", "10.77.8.1")
        .env("PEER_PORT", "6300")
        .output()
        .unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), Some(libc::SIGTERM), "{out:?}");
    assert_eq!(accepting.join().unwrap(), b"to be captured");
    let text = String::from_utf8_lossy(&out.stdout);
    let moved: usize = text
        .lines()
        .find_map(|l| l.strip_prefix("packets "))
        .unwrap_or_else(|| panic!("child said: {text}"))
        .parse()
        .unwrap();
    // Every packet is in the file, and both readers take it.
    for reader in [["tcpdump", "-nr"], ["tshark", "-nr"]] {
        let r = std::process::Command::new(reader[0])
            .args([reader[1], pcap.to_str().unwrap()])
            .output()
            .unwrap_or_else(|e| panic!("{} (Debian package {0}): {e}", reader[0]));
        assert!(r.status.success(), "{} failed: {r:?}", reader[0]);
        let lines = String::from_utf8_lossy(&r.stdout).lines().count();
        assert_eq!(
            lines, moved,
            "{} reads {lines} of {moved} packets",
            reader[0]
        );
    }
    let _ = std::fs::remove_file(&pcap);
}

fn rstcp_log_debug_shows_transitions_and_trace_each_packet() {
    let kl = TcpListener::bind(("0.0.0.0", 6310)).unwrap();
    let accepting = std::thread::spawn(move || {
        for _ in 0..2 {
            let (mut k, _) = kl.accept().unwrap();
            let mut got = Vec::new();
            k.read_to_end(&mut got).unwrap();
            assert_eq!(got, b"logged");
        }
    });
    let run = |n: u8, level: &str| {
        let dev = format!("rstcplog{n}");
        let addr = format!("10.77.{}.2/24", 30 + n);
        let peer = format!("10.77.{}.1", 30 + n);
        let env = [
            ("RSTCP_TUN", dev.as_str()),
            ("RSTCP_ADDR", addr.as_str()),
            ("RSTCP_LOG", level),
            ("PEER_ADDR", peer.as_str()),
            ("PEER_PORT", "6310"),
        ];
        let (code, err) = run_child("one_connection", &env);
        assert_eq!(code, Some(0), "{err}");
        err
    };
    let debug = run(1, "debug");
    for want in [
        ": SYN-SENT",
        "SYN-SENT -> ESTABLISHED",
        "-> FIN-WAIT-1",
        "-> TIME-WAIT",
        "10.77.31.1:6310",
    ] {
        assert!(debug.contains(want), "no {want:?} in:\n{debug}");
    }
    assert!(!debug.contains("rstcp trace"), "{debug}");
    let trace = run(2, "trace");
    let out_syn = trace
        .lines()
        .find(|l| l.contains("rstcp trace: out") && l.contains("[SYN]"));
    assert!(
        out_syn.is_some_and(|l| l.contains("> 10.77.32.1:6310")),
        "{trace}"
    );
    assert!(
        trace
            .lines()
            .any(|l| l.contains("rstcp trace: in ") && l.contains("SYN|ACK")),
        "{trace}"
    );
    assert!(trace.contains("len 6"), "the data segment: {trace}");
    accepting.join().unwrap();
}

fn rstcp_stat_0_turns_the_endpoint_off() {
    let dir = std::env::temp_dir().join(format!("rstcp-stat-off-{}", std::process::id()));
    let dir = dir.to_str().unwrap();
    for (n, stat) in [(1, "1"), (2, "0")] {
        let dev = format!("rstcpst{n}");
        let addr = format!("10.77.{}.2/24", 20 + n);
        let env = [
            ("RSTCP_TUN", dev.as_str()),
            ("RSTCP_ADDR", addr.as_str()),
            ("RSTCP_STAT", stat),
            ("RSTCP_STAT_DIR", dir),
        ];
        let (code, err) = run_child("stat_endpoint", &env);
        assert_eq!(code, Some(0), "RSTCP_STAT={stat}: {err}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

fn main() {
    if let Ok(mode) = std::env::var("RSTCP_FFI_CHILD") {
        std::process::exit(child(&mode));
    }
    let cases: &[(&str, fn())] = &[
        (
            "a_forked_child_leaves_the_parents_connections_alone",
            a_forked_child_leaves_the_parents_connections_alone,
        ),
        (
            "a_failed_start_is_explained_once_and_rs_init_can_retry",
            a_failed_start_is_explained_once_and_rs_init_can_retry,
        ),
        (
            "rstcp_log_debug_shows_transitions_and_trace_each_packet",
            rstcp_log_debug_shows_transitions_and_trace_each_packet,
        ),
        (
            "rstcp_stat_0_turns_the_endpoint_off",
            rstcp_stat_0_turns_the_endpoint_off,
        ),
        (
            "a_capture_is_complete_when_sigterm_ends_the_program",
            a_capture_is_complete_when_sigterm_ends_the_program,
        ),
        (
            "a_panic_in_an_application_thread_fails_the_stack",
            a_panic_in_an_application_thread_fails_the_stack,
        ),
    ];
    common::run_cases("ffi_process", Duration::from_secs(120), start_stack, cases);
}

/// Starts the stack now: it creates the TUN device and the kernel's address.
fn start_stack() {
    assert_eq!(
        rs_init(std::ptr::null(), std::ptr::null(), std::ptr::null()),
        0,
        "rs_init: errno {}",
        errno()
    );
}
