//! The workloads. The stack under measurement serves (`Server`, written once
//! for rstcp and the kernel); kernel clients in the peer namespace drive the
//! load and time it (`Peer`), with the same code whichever stack serves.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::hold::Holder;
use crate::subject::Subject;

/// Reads until end of stream, then closes.
pub const SINK: u16 = 5001;
/// Sends until the peer goes away.
pub const SOURCE: u16 = 5002;
/// Echoes what it reads.
pub const ECHO: u16 = 5003;
/// One 64-byte request, one 64-byte reply, then waits for the close.
pub const CRR: [u16; 4] = [5010, 5011, 5012, 5013];
/// Accepts and holds connections open, idle: one port per group (rstcp
/// only; for the kernel, `hold` children listen on these ports).
pub const IDLE: [u16; 8] = [5100, 5101, 5102, 5103, 5104, 5105, 5106, 5107];

#[derive(Clone, Copy)]
enum Role {
    Sink,
    Source,
    Echo,
    Crr,
    Idle,
}

/// The subject's servers on all the ports above.
pub struct Server {
    subject: Subject,
    listeners: Vec<i32>,
    threads: Vec<JoinHandle<()>>,
    stopping: Arc<AtomicBool>,
    /// Descriptors the idle ports accepted.
    held: Arc<Mutex<Vec<i32>>>,
}

impl Server {
    pub fn start(subject: &Subject) -> io::Result<Server> {
        let mut server = Server {
            subject: subject.clone(),
            listeners: Vec::new(),
            threads: Vec::new(),
            stopping: Arc::new(AtomicBool::new(false)),
            held: Arc::new(Mutex::new(Vec::new())),
        };
        let mut ports = vec![
            (SINK, Role::Sink),
            (SOURCE, Role::Source),
            (ECHO, Role::Echo),
        ];
        ports.extend(CRR.iter().map(|&p| (p, Role::Crr)));
        if let Subject::Rstcp(_) = subject {
            ports.extend(IDLE.iter().map(|&p| (p, Role::Idle)));
        }
        for (port, role) in ports {
            let l = subject.listen(port)?;
            server.listeners.push(l);
            let (s, stop, held) = (
                subject.clone(),
                server.stopping.clone(),
                server.held.clone(),
            );
            server.threads.push(std::thread::spawn(move || {
                accept_loop(&s, l, role, &stop, &held)
            }));
        }
        Ok(server)
    }

    /// How many idle connections the subject holds.
    pub fn held(&self) -> usize {
        self.held.lock().unwrap().len()
    }

    /// Closes the held idle connections.
    pub fn release_idle(&self) {
        for fd in self.held.lock().unwrap().drain(..) {
            self.subject.close(fd);
        }
    }

    pub fn stop(mut self) {
        self.stopping.store(true, Ordering::Release);
        self.release_idle();
        for &l in &self.listeners {
            self.subject.close_listener(l);
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn accept_loop(s: &Subject, l: i32, role: Role, stop: &AtomicBool, held: &Mutex<Vec<i32>>) {
    loop {
        let c = match s.accept(l) {
            Ok(c) => c,
            Err(_) if stop.load(Ordering::Acquire) => return,
            Err(_) => {
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
        };
        match role {
            Role::Idle => held.lock().unwrap().push(c),
            // Inline: a thread per connection would cost more than the connection.
            Role::Crr => crr_serve(s, c),
            _ => {
                let s = s.clone();
                std::thread::spawn(move || serve(&s, c, role));
            }
        }
    }
}

/// Writes 128 KiB blocks to the sink until `secs` after `t0`, shuts down
/// and waits for the subject to close: the bytes sent.
fn send_until(c: &mut TcpStream, t0: Instant, secs: f64) -> io::Result<u64> {
    let buf = vec![0x5au8; 128 * 1024];
    let mut bytes = 0u64;
    while t0.elapsed().as_secs_f64() < secs {
        c.write_all(&buf)?;
        bytes += buf.len() as u64;
    }
    c.shutdown(Shutdown::Write)?;
    let mut end = [0u8; 16];
    while c.read(&mut end)? > 0 {}
    Ok(bytes)
}

fn crr_serve(s: &Subject, c: i32) {
    s.nodelay(c);
    let mut buf = [0u8; 64];
    let mut got = 0;
    while got < 64 {
        match s.recv(c, &mut buf[got..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    if got == 64 && s.send_all(c, &buf).is_ok() {
        // The client closes first; wait for its FIN.
        while matches!(s.recv(c, &mut buf), Ok(n) if n > 0) {}
    }
    s.close(c);
}

fn serve(s: &Subject, c: i32, role: Role) {
    let mut buf = vec![0u8; 128 * 1024];
    match role {
        Role::Sink => while matches!(s.recv(c, &mut buf), Ok(n) if n > 0) {},
        Role::Source => while s.send_all(c, &buf[..64 * 1024]).is_ok() {},
        Role::Echo => {
            s.nodelay(c);
            while let Ok(n) = s.recv(c, &mut buf) {
                if n == 0 || s.send_all(c, &buf[..n]).is_err() {
                    break;
                }
            }
        }
        Role::Crr | Role::Idle => {}
    }
    s.close(c);
}

/// Kernel clients in the peer namespace, against the subject at `ip`.
#[derive(Clone)]
pub struct Peer {
    pub ns: String,
    pub ip: Ipv4Addr,
}

impl Peer {
    fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(Ipv4Addr) -> io::Result<T> + Send + 'static,
    ) -> io::Result<T> {
        let ip = self.ip;
        crate::netns::in_ns(&self.ns, move || f(ip))
    }

    /// Bulk throughput into the subject (it receives), in Gbit/s: the
    /// peer sends for `secs`, shuts down, and the clock stops when the
    /// subject has read everything and closed.
    pub fn bulk_in(&self, secs: f64) -> io::Result<f64> {
        self.run(move |ip| {
            let mut c = TcpStream::connect((ip, SINK))?;
            let t0 = Instant::now();
            let bytes = send_until(&mut c, t0, secs)?;
            Ok(bytes as f64 * 8.0 / t0.elapsed().as_secs_f64() / 1e9)
        })
    }

    /// Like [`Peer::bulk_in`] with `flows` connections at once: their
    /// bytes summed over the time the last took.
    pub fn bulk_in_flows(&self, secs: f64, flows: usize) -> io::Result<f64> {
        self.run(move |ip| {
            let t0 = Instant::now();
            let senders: Vec<_> = (0..flows)
                .map(|_| {
                    // Threads made here are in the namespace too.
                    std::thread::spawn(move || {
                        send_until(&mut TcpStream::connect((ip, SINK))?, t0, secs)
                    })
                })
                .collect();
            let mut bytes = 0;
            for s in senders {
                bytes += s
                    .join()
                    .map_err(|_| io::Error::other("a sender panicked"))??;
            }
            Ok(bytes as f64 * 8.0 / t0.elapsed().as_secs_f64() / 1e9)
        })
    }

    /// Bulk throughput out of the subject (it sends), in Gbit/s, from the
    /// first byte the peer reads for `secs`.
    pub fn bulk_out(&self, secs: f64) -> io::Result<f64> {
        self.run(move |ip| {
            let mut c = TcpStream::connect((ip, SOURCE))?;
            let mut buf = vec![0u8; 128 * 1024];
            let mut bytes = c.read(&mut buf)? as u64;
            let t0 = Instant::now();
            while t0.elapsed().as_secs_f64() < secs {
                let n = c.read(&mut buf)?;
                if n == 0 {
                    return Err(io::Error::other("the source closed early"));
                }
                bytes += n as u64;
            }
            Ok(bytes as f64 * 8.0 / t0.elapsed().as_secs_f64() / 1e9)
        })
    }

    /// 1-byte request/response round trips per second on one connection.
    pub fn round_trips(&self, secs: f64) -> io::Result<f64> {
        self.run(move |ip| {
            let mut c = TcpStream::connect((ip, ECHO))?;
            c.set_nodelay(true)?;
            let mut b = [7u8; 1];
            let t0 = Instant::now();
            let mut n = 0u64;
            while t0.elapsed().as_secs_f64() < secs {
                // Time is read every 64 round trips.
                for _ in 0..64 {
                    c.write_all(&b)?;
                    c.read_exact(&mut b)?;
                }
                n += 64;
            }
            Ok(n as f64 / t0.elapsed().as_secs_f64())
        })
    }

    /// Connections per second, one after another: connect, 64-byte request,
    /// 64-byte reply, close (the client closes first).
    pub fn connections(&self, secs: f64) -> io::Result<f64> {
        self.run(move |ip| {
            let req = [1u8; 64];
            let mut rep = [0u8; 64];
            let t0 = Instant::now();
            let mut n = 0u64;
            while t0.elapsed().as_secs_f64() < secs {
                let mut c = TcpStream::connect((ip, CRR[n as usize % CRR.len()]))?;
                c.set_nodelay(true)?;
                c.write_all(&req)?;
                c.read_exact(&mut rep)?;
                drop(c);
                n += 1;
            }
            Ok(n as f64 / t0.elapsed().as_secs_f64())
        })
    }

    /// Opens `n` more idle connections in groups of at most `group`, each
    /// group held by child processes on the next idle port (`next_port`
    /// counts them); for the kernel (`kernel_ns`, the subject's namespace)
    /// a child holds the accepted ends too. Waits until the subject holds
    /// `total` (rstcp's server counts them).
    pub fn open_idle(
        &self,
        kernel_ns: Option<&str>,
        server: &Server,
        next_port: &mut usize,
        (n, group, total): (usize, usize, usize),
    ) -> io::Result<Vec<Holder>> {
        let mut holders = Vec::new();
        let mut left = n;
        while left > 0 {
            let k = left.min(group);
            let port = *IDLE
                .get(*next_port)
                .ok_or_else(|| io::Error::other("more idle connections than idle ports"))?;
            *next_port += 1;
            let mut accepted = match kernel_ns {
                Some(ns) => Some(Holder::spawn("server", ns, self.ip, port, k)?),
                None => None,
            };
            holders.push(Holder::spawn("clients", &self.ns, self.ip, port, k)?);
            if let Some(h) = accepted.as_mut() {
                h.expect("ready")?;
            }
            holders.extend(accepted);
            left -= k;
        }
        let t0 = Instant::now();
        while kernel_ns.is_none() && server.held() < total {
            if t0.elapsed() > Duration::from_secs(60) {
                return Err(io::Error::other(format!(
                    "the subject accepted {} of {total} idle connections",
                    server.held()
                )));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(holders)
    }
}
