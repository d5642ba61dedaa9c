//! rstcp-stat: the sockets of running rstcp processes, as `ss -tn` shows
//! the kernel's, and their counters, as `netstat -s` does.
//!
//! ```text
//! rstcp-stat [-a | -l] [-i] [-s] [-p PID] [-d DIR]
//! ```
//!
//! Each process that runs rstcp answers on `<dir>/<pid>.sock` (see
//! `rstcp::api::stat`); this tool reads every one it may.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "usage: rstcp-stat [-a | -l] [-i] [-s] [-p PID] [-d DIR]
  (default) connections, as `ss -tn`
  -a        all sockets, listening and unconnected ones too
  -l        listening sockets only
  -i        TCP_INFO figures under each connection (rtt, cwnd, retransmits...)
  -s        the stacks' counters, as `netstat -s`
  -p PID    only this process
  -d DIR    look for processes' endpoints in DIR (default: RSTCP_STAT_DIR,
            /run/rstcp, $XDG_RUNTIME_DIR/rstcp, /tmp/rstcp-<uid>)";

#[derive(Default)]
struct Options {
    all: bool,
    listening: bool,
    info: bool,
    counters: bool,
    pid: Option<i32>,
    dirs: Vec<PathBuf>,
}

fn parse_args() -> Result<Options, String> {
    let mut o = Options::default();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "-a" => o.all = true,
            "-l" => o.listening = true,
            "-i" => o.info = true,
            "-s" => o.counters = true,
            "-p" => {
                let v = args.next().ok_or("-p needs a process id")?;
                o.pid = Some(v.parse().map_err(|_| format!("-p {v}: not a process id"))?);
            }
            "-d" => o
                .dirs
                .push(args.next().ok_or("-d needs a directory")?.into()),
            "-h" | "--help" => return Err(String::new()),
            _ => return Err(format!("unknown argument {a}")),
        }
    }
    if o.dirs.is_empty() {
        o.dirs = default_dirs();
    }
    Ok(o)
}

/// The places processes of this user (or of anyone, for root) put their
/// endpoints.
fn default_dirs() -> Vec<PathBuf> {
    if let Some(d) = std::env::var_os("RSTCP_STAT_DIR") {
        return vec![d.into()];
    }
    let mut dirs = vec![PathBuf::from("/run/rstcp")];
    if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR") {
        dirs.push(Path::new(&d).join("rstcp"));
    }
    if let Ok(rd) = std::fs::read_dir("/run/user") {
        dirs.extend(rd.flatten().map(|e| e.path().join("rstcp")));
    }
    if let Ok(rd) = std::fs::read_dir("/tmp") {
        dirs.extend(
            rd.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("rstcp-"))
                .map(|e| e.path()),
        );
    }
    dirs.sort();
    dirs.dedup();
    dirs
}

/// One record of a report: its kind and `key=value` fields.
struct Record {
    kind: String,
    fields: BTreeMap<String, String>,
}

impl Record {
    fn get(&self, k: &str) -> &str {
        self.fields.get(k).map_or("", |v| v.as_str())
    }
}

fn parse_report(text: &str) -> Vec<Record> {
    text.lines()
        .map(|l| {
            let mut words = l.split_whitespace();
            let kind = words.next().unwrap_or("").to_string();
            let fields = words
                .filter_map(|w| w.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            Record { kind, fields }
        })
        .collect()
}

/// Reads the report of the process behind `path`; None if it is gone (a
/// stale endpoint of a process that died is removed when its pid is gone).
fn fetch(path: &Path) -> Option<String> {
    let mut s = match UnixStream::connect(path) {
        Ok(s) => s,
        Err(_) => {
            let pid = pid_of(path)?;
            // SAFETY: kill with signal 0 only checks that the process exists.
            if unsafe { libc::kill(pid, 0) } != 0
                && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
            {
                let _ = std::fs::remove_file(path);
            }
            return None;
        }
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    text.ends_with("end\n").then_some(text)
}

fn pid_of(path: &Path) -> Option<i32> {
    path.file_stem()?.to_str()?.parse().ok()
}

fn endpoints(o: &Options) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for d in &o.dirs {
        let Ok(rd) = std::fs::read_dir(d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "sock")
                && pid_of(&p).is_some_and(|pid| o.pid.is_none_or(|want| want == pid))
            {
                out.push(p);
            }
        }
    }
    out.sort_by_key(|p| pid_of(p));
    out
}

/// `ss`'s short state names.
fn short_state(s: &str) -> &str {
    match s {
        "ESTABLISHED" => "ESTAB",
        "SYN-SENT" => "SYN-SENT",
        "SYN-RECEIVED" => "SYN-RECV",
        "FIN-WAIT-1" => "FIN-WAIT-1",
        "FIN-WAIT-2" => "FIN-WAIT-2",
        "CLOSE-WAIT" => "CLOSE-WAIT",
        "LAST-ACK" => "LAST-ACK",
        "TIME-WAIT" => "TIME-WAIT",
        "CLOSING" => "CLOSING",
        "LISTEN" => "LISTEN",
        "CLOSED" => "UNCONN",
        other => other,
    }
}

fn ms(us: &str) -> String {
    us.parse::<f64>()
        .map_or_else(|_| "?".into(), |v| format!("{:.3}", v / 1000.0))
}

fn print_sockets(o: &Options, pid: i32, records: &[Record]) {
    for r in records.iter().filter(|r| r.kind == "socket") {
        let state = r.get("state");
        let shown = if o.listening {
            state == "LISTEN"
        } else {
            o.all || (state != "LISTEN" && state != "CLOSED")
        };
        if !shown {
            continue;
        }
        let fd = match r.get("fd") {
            "-1" => "-".to_string(),
            fd => fd.to_string(),
        };
        println!(
            "{:<7} {:<4} {:<11} {:>6} {:>6}  {:<22} {:<22}",
            pid,
            fd,
            short_state(state),
            r.get("recvq"),
            r.get("sendq"),
            r.get("local"),
            r.get("peer"),
        );
        if o.info && r.fields.contains_key("rtt_us") {
            // Like ss, no ssthresh before the first loss ("infinity").
            let ssthresh = match r.get("ssthresh") {
                "2147483647" => String::new(),
                v => format!(" ssthresh:{v}"),
            };
            println!(
                "\t rtt:{}/{} minrtt:{} rto:{} mss:{} cwnd:{}{} unacked:{} sacked:{} \
                 lost:{} retrans:{}/{} snd_wnd:{} rcv_space:{}",
                ms(r.get("rtt_us")),
                ms(r.get("rttvar_us")),
                ms(r.get("min_rtt_us")),
                ms(r.get("rto_us")),
                r.get("mss"),
                r.get("cwnd"),
                ssthresh,
                r.get("unacked"),
                r.get("sacked"),
                r.get("lost"),
                r.get("retransmits"),
                r.get("total_retrans"),
                r.get("snd_wnd"),
                r.get("rcv_space"),
            );
        }
    }
}

fn print_counters(pid: i32, records: &[Record]) {
    println!("pid {pid}:");
    for r in records.iter().filter(|r| r.kind == "counter") {
        println!(
            "    {:>12} {}",
            r.get("value"),
            r.get("name").replace('_', " ")
        );
    }
}

fn main() -> ExitCode {
    let o = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("rstcp-stat: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let reports: Vec<(i32, Vec<Record>)> = endpoints(&o)
        .iter()
        .filter_map(|p| Some((pid_of(p)?, parse_report(&fetch(p)?))))
        .collect();
    if reports.is_empty() {
        if let Some(pid) = o.pid {
            eprintln!("rstcp-stat: process {pid} runs no rstcp stack that answers");
            return ExitCode::from(1);
        }
    }
    if o.counters {
        for (pid, records) in &reports {
            print_counters(*pid, records);
        }
        return ExitCode::SUCCESS;
    }
    println!(
        "{:<7} {:<4} {:<11} {:>6} {:>6}  {:<22} {:<22}",
        "PID", "FD", "State", "Recv-Q", "Send-Q", "Local Address:Port", "Peer Address:Port"
    );
    for (pid, records) in &reports {
        print_sockets(&o, *pid, records);
    }
    ExitCode::SUCCESS
}
