//! Idle connections held by child processes (`rstcp-bench --hold …`), so
//! that tens of thousands of them fit the per-process descriptor limit:
//! each child holds one group on one port. A "clients" child opens the
//! kernel clients' ends; for the kernel a "server" child holds the accepted
//! ends too (rstcp holds its own in this process: its descriptors are not
//! the kernel's). A child says "listening" / "ready" on stdout and exits,
//! closing everything, when its stdin closes.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A child holding a group of connections; dropping it ends the child.
pub struct Holder {
    /// Holds the clients' ends (else the kernel subject's accepted ends).
    pub clients: bool,
    child: Child,
    out: BufReader<ChildStdout>,
}

impl Holder {
    /// Starts `rstcp-bench --hold KIND NS IP PORT N` and waits for its first line.
    pub fn spawn(kind: &str, ns: &str, ip: Ipv4Addr, port: u16, n: usize) -> io::Result<Holder> {
        let mut child = Command::new("/proc/self/exe")
            .args([
                "--hold",
                kind,
                ns,
                &ip.to_string(),
                &port.to_string(),
                &n.to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let out = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut h = Holder {
            clients: kind == "clients",
            child,
            out,
        };
        h.expect(if kind == "server" {
            "listening"
        } else {
            "ready"
        })?;
        Ok(h)
    }

    /// Waits for the line `word` from the child.
    pub fn expect(&mut self, word: &str) -> io::Result<()> {
        let mut line = String::new();
        self.out.read_line(&mut line)?;
        if line.trim() != word {
            return Err(io::Error::other(format!(
                "a --hold child said {line:?} instead of {word:?}"
            )));
        }
        Ok(())
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// The child's main: `--hold clients|server NS IP PORT N`.
pub fn child_main(args: &[String]) -> ! {
    let r = (|| -> io::Result<()> {
        let [kind, ns, ip, port, n] = args else {
            return Err(io::Error::other(
                "usage: --hold clients|server NS IP PORT N",
            ));
        };
        let ip: Ipv4Addr = ip.parse().map_err(io::Error::other)?;
        let port: u16 = port.parse().map_err(io::Error::other)?;
        let n: usize = n.parse().map_err(io::Error::other)?;
        crate::raise_fd_limit(n + 256);
        crate::netns::enter(ns);
        let mut out = io::stdout();
        let _held = if kind == "server" {
            let l = TcpListener::bind((Ipv4Addr::UNSPECIFIED, port))?;
            // SAFETY: listen on our socket, with the largest queue.
            unsafe { libc::listen(l.as_raw_fd(), 65535) };
            writeln!(out, "listening")?;
            (0..n)
                .map(|_| l.accept().map(|(c, _)| c))
                .collect::<io::Result<Vec<_>>>()?
        } else {
            open(SocketAddrV4::new(ip, port), n)?
        };
        writeln!(out, "ready")?;
        out.flush()?;
        // Hold until the parent closes our stdin (or exits).
        let _ = io::stdin().read_to_end(&mut Vec::new());
        Ok(())
    })();
    if let Err(e) = r {
        eprintln!("rstcp-bench --hold: {e}");
        std::process::exit(1);
    }
    std::process::exit(0);
}

/// Opens `n` connections to `addr` from 4 threads.
fn open(addr: SocketAddrV4, n: usize) -> io::Result<Vec<TcpStream>> {
    let next = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let next = next.clone();
            std::thread::spawn(move || -> io::Result<Vec<TcpStream>> {
                let mut mine = Vec::new();
                while next.fetch_add(1, Ordering::Relaxed) < n {
                    mine.push(connect_retrying(addr)?);
                }
                Ok(mine)
            })
        })
        .collect();
    let mut all = Vec::with_capacity(n);
    for t in threads {
        all.extend(t.join().expect("opener panicked")?);
    }
    Ok(all)
}

/// connect(), retried for a while on a full queue or a lost SYN.
fn connect_retrying(addr: SocketAddrV4) -> io::Result<TcpStream> {
    let t0 = Instant::now();
    loop {
        match TcpStream::connect_timeout(&addr.into(), Duration::from_secs(5)) {
            Ok(c) => return Ok(c),
            Err(e) if t0.elapsed() > Duration::from_secs(20) => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}
