//! `rstcp-run`: runs a program with its IPv4 TCP on rstcp, like `onload`.
//!
//! ```text
//! rstcp-run [--tun NAME] [--addr A.B.C.D/P] [--peer A.B.C.D] [--lib PATH] [--] PROGRAM [ARGS…]
//! ```
//!
//! Sets LD_PRELOAD to librstcp_preload.so (from --lib, $RSTCP_PRELOAD_LIB,
//! beside this executable, or ../lib beside it) and the RSTCP_* variables
//! from the options, then executes PROGRAM in place. Exit status: the
//! program's own; 2 for a usage error; 1 when the library is not found;
//! 127 when PROGRAM is not found; 126 when it cannot be executed.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{exit, Command};

const USAGE: &str = "usage: rstcp-run [--tun NAME] [--addr A.B.C.D/P] [--peer A.B.C.D] [--lib PATH] [--] PROGRAM [ARGS...]

Runs PROGRAM with librstcp_preload.so preloaded: its IPv4 TCP sockets whose
address is on the stack's link go through rstcp, everything else through
the kernel.

  --tun NAME      TUN device (RSTCP_TUN; default rstcp0)
  --addr A/P      the stack's address and prefix (RSTCP_ADDR; default 10.77.0.2/24)
  --peer A        the kernel side's address if the device is created (RSTCP_PEER)
  --lib PATH      the preload library (default: beside rstcp-run, or ../lib)

Exit status: PROGRAM's own; 2 usage error; 1 library not found;
127 PROGRAM not found; 126 PROGRAM not executable.";

fn usage(msg: &str) -> ! {
    eprintln!("rstcp-run: {msg}\n{USAGE}");
    exit(2)
}

fn find_lib(explicit: Option<String>) -> Option<PathBuf> {
    const NAME: &str = "librstcp_preload.so";
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(p) = explicit.or_else(|| std::env::var("RSTCP_PRELOAD_LIB").ok()) {
        candidates.push(p.into());
    } else if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            candidates.push(dir.join(NAME));
            candidates.push(dir.join("../lib").join(NAME));
        }
    }
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .and_then(|p| p.canonicalize().ok())
}

fn main() {
    let mut args = std::env::args().skip(1).peekable();
    let mut env: Vec<(&str, String)> = Vec::new();
    let mut lib = None;
    while let Some(a) = args.peek().cloned() {
        let mut value = |name: &str| {
            args.next();
            args.next()
                .unwrap_or_else(|| usage(&format!("{name} needs a value")))
        };
        match a.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                exit(0)
            }
            "--tun" => env.push(("RSTCP_TUN", value("--tun"))),
            "--addr" => {
                let v = value("--addr");
                if rstcp::runtime::config::parse_cidr(&v).is_err() {
                    usage(&format!("--addr {v:?} is not A.B.C.D/P"));
                }
                env.push(("RSTCP_ADDR", v));
            }
            "--peer" => {
                let v = value("--peer");
                if v.parse::<std::net::Ipv4Addr>().is_err() {
                    usage(&format!("--peer {v:?} is not an IPv4 address"));
                }
                env.push(("RSTCP_PEER", v));
            }
            "--lib" => lib = Some(value("--lib")),
            "--" => {
                args.next();
                break;
            }
            s if s.starts_with('-') => usage(&format!("unknown option {s}")),
            _ => break,
        }
    }
    let Some(program) = args.next() else {
        usage("no program given")
    };
    let Some(lib) = find_lib(lib) else {
        eprintln!("rstcp-run: librstcp_preload.so not found (use --lib or RSTCP_PRELOAD_LIB)");
        exit(1)
    };
    let preload = match std::env::var("LD_PRELOAD") {
        Ok(old) if !old.is_empty() => format!("{} {old}", lib.display()),
        _ => lib.display().to_string(),
    };
    let err = Command::new(&program)
        .args(args)
        .envs(env)
        .env("LD_PRELOAD", preload)
        .exec();
    eprintln!("rstcp-run: {program}: {err}");
    exit(match err.kind() {
        std::io::ErrorKind::NotFound => 127,
        _ => 126,
    })
}
