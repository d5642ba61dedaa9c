//! rstcp-bench: rstcp beside the Linux kernel on the same kind of path, in
//! one run. See bench/README.md (or the README's "Benchmark" section) and
//! run it through bench/run.sh, which builds it and draws the chart.
//!
//! rstcp serves on a TUN device in namespace …-r (10.77.0.2; its kernel
//! side 10.77.0.1 runs the kernel clients). The kernel serves in namespace
//! …-a (10.88.0.1) over a veth pair to namespace …-b (10.88.0.2, the
//! clients), with the veth offloads on (the default) and off (ethtool -K
//! tso/gso/gro off). The clients are the same code in every case and do the
//! timing. Every figure is printed with the kernel's and the ratio. Beside
//! them: smoltcp serving on a TUN device of its own (namespace …-s,
//! 10.99.0.2), and the raw TUN ceiling (namespace …-t, no TCP at all).

mod ceiling;
mod hold;
mod netns;
mod report;
mod smol;
mod subject;
mod workloads;

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use netns::Netns;
use report::{Figure, Results};
use subject::Subject;
use workloads::{Peer, Server};

struct Options {
    runs: usize,
    secs: f64,
    idle: usize,
    json: String,
    ceiling: bool,
    smoltcp: bool,
    /// Only these groups of figures (--only), or all.
    only: Option<Vec<String>>,
}

/// The groups `--only` takes.
const GROUPS: [&str; 7] = [
    "bulk_in",
    "bulk_out",
    "flows",
    "round_trips",
    "connections",
    "idle",
    "ceiling",
];

impl Options {
    /// Whether the figures of `group` are to be measured.
    fn wants(&self, group: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|only| only.iter().any(|g| g == group))
    }
}

fn usage() -> ! {
    eprintln!(
        "usage: rstcp-bench [--quick] [--runs N] [--secs S] [--idle N] [--json PATH] [--no-ceiling] [--no-smoltcp] [--only G,G...]\n\
         \x20 --only       some groups of figures: bulk_in, bulk_out, flows, round_trips, connections, idle, ceiling\n\
         \x20 --quick      3 runs of 1 s per figure, 10,000 idle connections\n\
         \x20 default      5 runs of 3 s per figure, 100,000 idle connections"
    );
    std::process::exit(2);
}

fn options() -> Options {
    let mut o = Options {
        runs: 5,
        secs: 3.0,
        idle: 100_000,
        json: "bench/results.json".into(),
        ceiling: true,
        smoltcp: true,
        only: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--quick" => {
                o.runs = 3;
                o.secs = 1.0;
                o.idle = 10_000;
            }
            "--runs" => o.runs = value().parse().unwrap_or_else(|_| usage()),
            "--secs" => o.secs = value().parse().unwrap_or_else(|_| usage()),
            "--idle" => o.idle = value().parse().unwrap_or_else(|_| usage()),
            "--json" => o.json = value(),
            "--no-ceiling" => o.ceiling = false,
            "--no-smoltcp" => o.smoltcp = false,
            "--only" => {
                let groups: Vec<String> = value().split(',').map(str::to_string).collect();
                if groups.iter().any(|g| !GROUPS.contains(&g.as_str())) {
                    usage();
                }
                o.only = Some(groups);
            }
            _ => usage(),
        }
    }
    // Eight idle ports of up to 15,000 connections each (one kernel client
    // per port and group, each within its own descriptor limit).
    o.idle = o.idle.clamp(100, 120_000);
    o.runs = o.runs.max(1);
    o
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--hold") {
        hold::child_main(&args[2..]);
    }
    netns::clean_up_on_signals();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("rstcp-bench: needs root (network namespaces, TUN devices): run bench/run.sh");
        std::process::exit(1);
    }
    let o = options();
    if let Err(e) = run(&o) {
        eprintln!("rstcp-bench: {e}");
        std::process::exit(1);
    }
}

/// Raises the descriptor limit to `want` if it may, else the soft limit to
/// the hard one; returns the limit in force.
pub fn raise_fd_limit(want: usize) -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: want as u64,
        rlim_max: want as u64,
    };
    // SAFETY: get/setrlimit with a struct we own.
    unsafe {
        if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
    }
    lim.rlim_cur as usize
}

/// A configuration measured: its label, the stack that serves (None:
/// smoltcp, which serves from a thread of its own), its clients.
struct Setup {
    label: &'static str,
    subject: Option<Subject>,
    peer: Peer,
    /// For the kernel: the veth pair, and whether offloads are on.
    veth: Option<(String, String, bool)>,
    /// For rstcp: the clients of a second rstcp with two shards (the
    /// several-flow figure only).
    sharded: Option<Peer>,
}

fn run(o: &Options) -> Result<(), String> {
    let pid = std::process::id();
    println!(
        "rstcp-bench: {} runs, {} s per figure, {} idle connections; namespaces rstcp-bench-{pid}-* (deleted at exit)",
        o.runs, o.secs, o.idle
    );

    // rstcp on a TUN device that the library creates in namespace r.
    let env = rstcp::runtime::RuntimeConfig::from_env()
        .map_err(|e| format!("RSTCP_* variables: {e:?}"))?;
    let ns_r = Netns::new("r")?;
    ns_r.exec(&["sysctl", "-qw", "net.ipv4.tcp_tw_reuse=1"])?;
    let cfg = rstcp::runtime::RuntimeConfig {
        tun: format!("rbt{pid}"),
        addr: Ipv4Addr::new(10, 77, 0, 2),
        prefix_len: 24,
        // RSTCP_BUSY_POLL_US and RSTCP_OFFLOAD apply as for any program.
        busy_poll: env.busy_poll,
        offload: env.offload,
        ..rstcp::runtime::RuntimeConfig::default()
    };
    let cfg_r = cfg.clone();
    let sockets = netns::in_ns(&ns_r.name, move || rstcp::api::Sockets::start(&cfg))
        .map_err(|e| format!("rstcp does not start: {e:?}"))?;
    let sockets = Arc::new(sockets);

    // The kernel: namespaces a and b joined by a veth pair.
    let ns_a = Netns::new("a")?;
    let ns_b = Netns::new("b")?;
    let (va, vb) = (format!("rbva{pid}"), format!("rbvb{pid}"));
    ns_a.exec(&[
        "ip", "link", "add", &va, "type", "veth", "peer", "name", &vb, "netns", &ns_b.name,
    ])?;
    ns_a.exec(&["ip", "addr", "add", "10.88.0.1/24", "dev", &va])?;
    ns_b.exec(&["ip", "addr", "add", "10.88.0.2/24", "dev", &vb])?;
    ns_a.exec(&["ip", "link", "set", &va, "up"])?;
    ns_b.exec(&["ip", "link", "set", &vb, "up"])?;
    ns_b.exec(&["sysctl", "-qw", "net.ipv4.tcp_tw_reuse=1"])?;
    let ethtool = ns_a.exec(&["ethtool", "-k", &va]).is_ok();

    // A second rstcp with two shards, in a namespace of its own, for the
    // several-flow figure.
    let ns_q = Netns::new("q")?;
    let sharded = if o.wants("flows") {
        let qcfg = rstcp::runtime::RuntimeConfig {
            tun: format!("rbq{pid}"),
            shards: 2,
            ..cfg_r.clone()
        };
        let s = netns::in_ns(&ns_q.name, move || rstcp::api::Sockets::start(&qcfg))
            .map_err(|e| format!("rstcp with shards does not start: {e:?}"))?;
        if s.shard_count() < 2 {
            println!(
                "note: the kernel refused the queue steering program (CAP_BPF): no sharded figure"
            );
            None
        } else {
            Some(Arc::new(s))
        }
    } else {
        None
    };
    let sharded_server = match &sharded {
        Some(s) => Some(
            Server::start(&Subject::Rstcp(s.clone()))
                .map_err(|e| format!("sharded rstcp servers: {e}"))?,
        ),
        None => None,
    };
    let rstcp_subject = Subject::Rstcp(sockets.clone());
    let kernel_subject = Subject::Kernel {
        ns: ns_a.name.clone(),
    };
    let mut setups = vec![
        Setup {
            label: "rstcp",
            subject: Some(rstcp_subject.clone()),
            peer: Peer {
                ns: ns_r.name.clone(),
                ip: Ipv4Addr::new(10, 77, 0, 2),
            },
            veth: None,
            sharded: sharded.as_ref().map(|_| Peer {
                ns: ns_q.name.clone(),
                ip: Ipv4Addr::new(10, 77, 0, 2),
            }),
        },
        Setup {
            label: "kernel",
            subject: Some(kernel_subject.clone()),
            peer: Peer {
                ns: ns_b.name.clone(),
                ip: Ipv4Addr::new(10, 88, 0, 1),
            },
            veth: Some((va.clone(), vb.clone(), true)),
            sharded: None,
        },
    ];
    if ethtool {
        setups.push(Setup {
            label: "kernel, offloads off",
            subject: Some(kernel_subject.clone()),
            peer: Peer {
                ns: ns_b.name.clone(),
                ip: Ipv4Addr::new(10, 88, 0, 1),
            },
            veth: Some((va.clone(), vb.clone(), false)),
            sharded: None,
        });
    } else {
        println!(
            "note: ethtool is missing: no \"kernel, offloads off\" column (Debian package ethtool)"
        );
    }
    // smoltcp on a TUN device of its own in namespace s.
    let mut smol_server = None;
    let ns_s = Netns::new("s")?;
    if o.smoltcp {
        ns_s.exec(&["sysctl", "-qw", "net.ipv4.tcp_tw_reuse=1"])?;
        smol_server = Some(smol::start(&ns_s, &format!("rbs{pid}"))?);
        setups.push(Setup {
            label: "smoltcp",
            subject: None,
            peer: Peer {
                ns: ns_s.name.clone(),
                ip: Ipv4Addr::new(10, 99, 0, 2),
            },
            veth: None,
            sharded: None,
        });
    }
    let labels: Vec<&str> = setups.iter().map(|s| s.label).collect();
    let mut results = Results::new(&labels, o);

    let rstcp_server = Server::start(&rstcp_subject).map_err(|e| format!("rstcp servers: {e}"))?;
    let kernel_server =
        Server::start(&kernel_subject).map_err(|e| format!("kernel servers: {e}"))?;
    let wait = Duration::from_millis(200);
    std::thread::sleep(wait);

    for run in 0..o.runs {
        println!("run {}/{}", run + 1, o.runs);
        for setup in &setups {
            let server = match setup.subject {
                Some(Subject::Rstcp(_)) => Some(&rstcp_server),
                Some(Subject::Kernel { .. }) => Some(&kernel_server),
                None => None,
            };
            if let Some((va, vb, on)) = &setup.veth {
                let v = if *on { "on" } else { "off" };
                for (ns, dev) in [(&ns_a, va), (&ns_b, vb)] {
                    if ethtool {
                        ns.exec(&["ethtool", "-K", dev, "tso", v, "gso", v, "gro", v])?;
                    }
                }
            }
            let t0 = Instant::now();
            measure(setup, server, o, &mut results)
                .map_err(|e| format!("{} (run {}): {e}", setup.label, run + 1))?;
            println!(
                "  {:<22} done in {:.1} s",
                setup.label,
                t0.elapsed().as_secs_f64()
            );
        }
    }
    rstcp_server.stop();
    kernel_server.stop();
    if let Some(s) = sharded_server {
        s.stop();
    }
    if let Some(s) = &sharded {
        s.stop();
    }
    drop(smol_server);

    if o.ceiling && o.wants("ceiling") {
        let ns_t = Netns::new("t")?;
        let fd = ceiling::open(&ns_t, &format!("rbc{pid}"))?;
        for _ in 0..o.runs {
            for (figure, size) in [(Figure::Tun64, 64), (Figure::Tun1500, 1500)] {
                results.add_extra(figure, ceiling::measure(fd, size, o.secs));
            }
        }
        // SAFETY: our descriptor.
        unsafe { libc::close(fd) };
    }
    results.smoltcp = Some(if o.smoltcp {
        "smoltcp 0.14 serves on a TUN device of its own, like rstcp; no idle-connection figures (its sockets and their buffers are made in advance)".into()
    } else {
        "left out (--no-smoltcp)".into()
    });

    results.print();
    results
        .write_json(&o.json)
        .map_err(|e| format!("{}: {e}", o.json))?;
    println!("wrote {}", o.json);
    sockets.stop();
    Ok(())
}

/// All figures of one setup, once.
fn measure(
    setup: &Setup,
    server: Option<&Server>,
    o: &Options,
    r: &mut Results,
) -> std::io::Result<()> {
    let (p, l, secs) = (&setup.peer, setup.label, o.secs);
    // Which figure failed, in the message.
    let at = |what: &'static str| {
        move |e: std::io::Error| std::io::Error::new(e.kind(), format!("{what}: {e}"))
    };
    if o.wants("bulk_in") {
        r.add(Figure::BulkIn, l, p.bulk_in(secs).map_err(at("bulk in"))?);
    }
    if o.wants("bulk_out") {
        r.add(
            Figure::BulkOut,
            l,
            p.bulk_out(secs).map_err(at("bulk out"))?,
        );
    }
    // Several flows: smoltcp's servers take one connection per port.
    if o.wants("flows") && setup.subject.is_some() {
        let flows = p.bulk_in_flows(secs, 4).map_err(at("4 flows"))?;
        r.add(Figure::Flows, l, flows);
        match &setup.sharded {
            Some(q) => r.add(
                Figure::FlowsSharded,
                l,
                q.bulk_in_flows(secs, 4).map_err(at("4 flows, 2 shards"))?,
            ),
            // The kernel's counterpart is the same figure: it has no shards.
            None if l != "rstcp" => r.add(Figure::FlowsSharded, l, flows),
            None => {}
        }
    }
    if o.wants("round_trips") {
        r.add(
            Figure::RoundTrips,
            l,
            p.round_trips(secs).map_err(at("round trips"))?,
        );
    }
    if o.wants("connections") {
        let before = wakeups(setup.subject.as_ref());
        r.add(
            Figure::Connections,
            l,
            p.connections(secs).map_err(at("connections"))?,
        );
        if let (Some((w0, c0)), Some((w1, c1))) = (before, wakeups(setup.subject.as_ref())) {
            let per = (w1 - w0) as f64 / (c1 - c0).max(1) as f64;
            println!("  {l:<22} the I/O thread woke {per:.2} times per connection");
        }
    }
    let (Some(server), Some(subject), true) = (server, &setup.subject, o.wants("idle")) else {
        return Ok(());
    };

    // Idle connections: 10 open, the cost of a request; then up to o.idle,
    // memory per connection and the cost of a request again.
    // Children hold the groups; each stays within the descriptor limit.
    let group = raise_fd_limit(20_000)
        .saturating_sub(256)
        .clamp(1000, 15_000);
    let kernel_ns = match subject {
        Subject::Kernel { ns } => Some(ns.as_str()),
        Subject::Rstcp(_) => None,
    };
    let mut port = 0;
    let mut open = p
        .open_idle(kernel_ns, server, &mut port, (10, group, 10))
        .map_err(at("10 idle"))?;
    r.add(
        Figure::Cost10,
        l,
        1e6 / p.round_trips(secs).map_err(at("request, 10 open"))?,
    );
    let before = memory(subject);
    let t0 = Instant::now();
    let more = (o.idle - 10, group, o.idle);
    open.extend(
        p.open_idle(kernel_ns, server, &mut port, more)
            .map_err(at("idle"))?,
    );
    let opened = t0.elapsed();
    let after = memory(subject);
    let endpoints = match subject {
        // Only rstcp's side is in the process's heap; the kernel clients'
        // sockets are in the kernel.
        Subject::Rstcp(_) => 1.0,
        // Both ends are kernel sockets in the same slab caches.
        Subject::Kernel { .. } => 2.0,
    };
    let per = (after - before) as f64 / ((o.idle - 10) as f64 * endpoints);
    r.add(Figure::Memory, l, per);
    r.add(
        Figure::CostMany,
        l,
        1e6 / p.round_trips(secs).map_err(at("request, many open"))?,
    );
    // The clients close first; their FINs are in before the stack closes
    // (closing both at once would leave TIME-WAITs on both sides).
    let (clients, servers): (Vec<_>, Vec<_>) = open.into_iter().partition(|h| h.clients);
    drop(clients);
    std::thread::sleep(Duration::from_millis(500));
    server.release_idle();
    drop(servers);
    let t0 = Instant::now();
    settle(subject);
    println!(
        "  {:<22} {} idle connections opened in {:.1} s, closed in {:.1} s",
        l,
        o.idle,
        opened.as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

/// rstcp's I/O thread wake-ups and passive opens so far (None for others).
fn wakeups(subject: Option<&Subject>) -> Option<(u64, u64)> {
    let Some(Subject::Rstcp(s)) = subject else {
        return None;
    };
    s.with_stack(|st| Some((st.stats().io_wakeups, st.stats().tcp_passive_opens)))
}

/// Memory that idle connections take: for rstcp the bytes its heap has in
/// use (mallinfo2: arena and mmap'd chunks); for the kernel the bytes in
/// use in all slab caches (/proc/slabinfo: active objects × object size).
fn memory(subject: &Subject) -> i64 {
    match subject {
        Subject::Rstcp(_) => {
            // SAFETY: mallinfo2 has no preconditions.
            let m = unsafe { libc::mallinfo2() };
            (m.uordblks + m.hblkhd) as i64
        }
        Subject::Kernel { .. } => slab_bytes(),
    }
}

fn slab_bytes() -> i64 {
    let text = std::fs::read_to_string("/proc/slabinfo").unwrap_or_default();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("slabinfo"))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let active: i64 = f.get(1)?.parse().ok()?;
            let size: i64 = f.get(3)?.parse().ok()?;
            Some(active * size)
        })
        .sum()
}

/// Waits (up to 10 s) until closed connections have gone, so the next
/// figure starts from a quiet stack.
fn settle(subject: &Subject) {
    let t0 = Instant::now();
    if let Subject::Rstcp(s) = subject {
        while s.with_stack(|st| st.socket_count() + st.time_waits().count() - st.time_wait_count())
            > 32
            && t0.elapsed() < Duration::from_secs(10)
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        if t0.elapsed() >= Duration::from_secs(10) {
            let mut states = std::collections::BTreeMap::new();
            s.with_stack(|st| {
                for (_, t) in st.connections() {
                    *states.entry(format!("{:?}", t.state())).or_insert(0) += 1;
                }
            });
            println!("  note: rstcp connections still open 10 s after the close: {states:?}");
        }
    } else {
        std::thread::sleep(Duration::from_millis(500));
    }
}
