//! packetdrill's shared-object interface, driven as packetdrill drives it
//! (by a driver of our own: no packetdrill code). The built
//! `librstcp.so` is opened with dlopen(RTLD_NOW | RTLD_LOCAL |
//! RTLD_NODELETE | RTLD_DEEPBIND), as packetdrill opens it, rather than
//! linked: that checks the exported entry point, that the library's own
//! symbols win inside it, and that every instance lives behind its
//! userdata. The table is read as packetdrill reads it, as 33 pointers in
//! their documented order, and fcntl/ioctl are called as the C-variadic
//! functions packetdrill declares them. Packets are bare IPv4 datagrams,
//! built and checked here with etherparse (not the stack's own codec).
//! Nothing touches the host network: no TUN, no namespace, no root.

use std::ffi::{c_char, c_int, c_long, c_longlong, c_uint, c_ulong, c_void, CString};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use etherparse::{IpNumber, Ipv4Header, TcpHeader};

/// The table's fields in packetdrill's order (its ABI).
const FIELDS: [&str; 33] = [
    "userdata",
    "free",
    "socket",
    "bind",
    "listen",
    "accept",
    "connect",
    "read",
    "readv",
    "recv",
    "recvfrom",
    "recvmsg",
    "write",
    "writev",
    "send",
    "sendto",
    "sendmsg",
    "fcntl",
    "ioctl",
    "close",
    "shutdown",
    "getsockopt",
    "setsockopt",
    "poll",
    "netdev_send",
    "netdev_receive",
    "usleep",
    "gettimeofday",
    "epoll_create",
    "epoll_ctl",
    "epoll_wait",
    "pipe",
    "splice",
];

const STACK: [u8; 4] = [192, 168, 0, 1];
const PEER: [u8; 4] = [192, 0, 2, 1];
const PEER_ISN: u32 = 1_000_000;

type U = *mut c_void;

/// The librstcp.so built with this test: cargo links tests against the
/// library in target/<profile>/deps (next to the test binary) and copies
/// it up to target/<profile> only in `cargo build`, so the copy there may
/// be stale.
fn library() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().join("librstcp.so")
}

/// The packetdrill_interface_init of the library, opened once as
/// packetdrill opens it.
fn entry_point() -> unsafe extern "C" fn(*const c_char, *mut c_void) {
    static INIT: OnceLock<usize> = OnceLock::new();
    let addr = *INIT.get_or_init(|| {
        let path = CString::new(library().to_str().unwrap()).unwrap();
        let how = libc::RTLD_NOW | libc::RTLD_LOCAL | libc::RTLD_NODELETE | libc::RTLD_DEEPBIND;
        // SAFETY: a NUL-terminated path; the library's initialisers are Rust's.
        let lib = unsafe { libc::dlopen(path.as_ptr(), how) };
        assert!(!lib.is_null(), "dlopen {path:?} failed");
        let name = CString::new("packetdrill_interface_init").unwrap();
        // SAFETY: a valid handle and name.
        let sym = unsafe { libc::dlsym(lib, name.as_ptr()) };
        assert!(!sym.is_null(), "packetdrill_interface_init is not exported");
        sym as usize
    });
    // SAFETY: the symbol is that function.
    unsafe { std::mem::transmute::<usize, unsafe extern "C" fn(*const c_char, *mut c_void)>(addr) }
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// One script's table.
struct Pd {
    slots: [usize; 33],
}

// SAFETY: packetdrill calls the table from two threads; so does this test.
unsafe impl Sync for Pd {}

impl Pd {
    fn init(flags: Option<&str>) -> Pd {
        let flags = flags.map(|f| CString::new(f).unwrap());
        let mut slots = [0usize; 33];
        // SAFETY: 33 zeroed pointer-sized fields, as packetdrill passes.
        unsafe {
            entry_point()(
                flags.as_ref().map_or(std::ptr::null(), |f| f.as_ptr()),
                slots.as_mut_ptr().cast(),
            )
        };
        for (name, slot) in FIELDS.iter().zip(slots) {
            assert_ne!(slot, 0, "init left {name} NULL");
        }
        Pd { slots }
    }

    fn u(&self) -> U {
        self.slots[0] as U
    }

    /// The function in field `name`, as type `F`.
    fn f<F: Copy>(&self, name: &str) -> F {
        assert_eq!(std::mem::size_of::<F>(), std::mem::size_of::<usize>());
        let i = FIELDS.iter().position(|n| *n == name).unwrap();
        // SAFETY: a non-NULL function pointer of the library.
        unsafe { std::mem::transmute_copy(&self.slots[i]) }
    }

    fn socket(&self) -> i32 {
        let f: unsafe extern "C" fn(U, c_int, c_int, c_int) -> c_int = self.f("socket");
        // SAFETY: the table's function, called as packetdrill calls it.
        let fd = unsafe {
            f(
                self.u(),
                libc::AF_INET,
                libc::SOCK_STREAM,
                libc::IPPROTO_TCP,
            )
        };
        assert!(fd >= 0, "socket: errno {}", errno());
        fd
    }

    /// bind or connect (`name`) to ip:port.
    fn to_address(&self, name: &str, fd: i32, ip: [u8; 4], port: u16) -> (i32, i32) {
        let f: unsafe extern "C" fn(U, c_int, *const libc::sockaddr, libc::socklen_t) -> c_int =
            self.f(name);
        let sin = sockaddr_in(ip, port);
        // errno means something only after a failure: start from 0 so a
        // success reads 0 whatever an earlier call in this thread left.
        // SAFETY: this thread's errno; then as packetdrill calls it.
        let r = unsafe {
            *libc::__errno_location() = 0;
            f(self.u(), fd, (&sin as *const libc::sockaddr_in).cast(), 16)
        };
        (r, errno())
    }

    fn bind(&self, fd: i32, ip: [u8; 4], port: u16) -> (i32, i32) {
        self.to_address("bind", fd, ip, port)
    }

    fn connect(&self, fd: i32, ip: [u8; 4], port: u16) -> (i32, i32) {
        self.to_address("connect", fd, ip, port)
    }

    fn listen(&self, fd: i32, backlog: i32) -> i32 {
        let f: unsafe extern "C" fn(U, c_int, c_int) -> c_int = self.f("listen");
        // SAFETY: as packetdrill calls it.
        unsafe { f(self.u(), fd, backlog) }
    }

    fn accept(&self, fd: i32) -> (i32, SocketAddrV4, u32) {
        let f: unsafe extern "C" fn(U, c_int, *mut libc::sockaddr, *mut libc::socklen_t) -> c_int =
            self.f("accept");
        let mut sin = sockaddr_in([0; 4], 0);
        let mut len: libc::socklen_t = 16;
        // SAFETY: as packetdrill calls it.
        let r = unsafe {
            f(
                self.u(),
                fd,
                (&mut sin as *mut libc::sockaddr_in).cast(),
                &mut len,
            )
        };
        let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
        (r, SocketAddrV4::new(ip, u16::from_be(sin.sin_port)), len)
    }

    fn read(&self, fd: i32, room: usize) -> (isize, Vec<u8>, i32) {
        let f: unsafe extern "C" fn(U, c_int, *mut c_void, usize) -> isize = self.f("read");
        let mut buf = vec![0u8; room];
        // SAFETY: as packetdrill calls it.
        let r = unsafe { f(self.u(), fd, buf.as_mut_ptr().cast(), room) };
        let e = errno();
        buf.truncate(r.max(0) as usize);
        (r, buf, e)
    }

    fn write(&self, fd: i32, data: &[u8]) -> isize {
        let f: unsafe extern "C" fn(U, c_int, *const c_void, usize) -> isize = self.f("write");
        // SAFETY: as packetdrill calls it.
        unsafe { f(self.u(), fd, data.as_ptr().cast(), data.len()) }
    }

    fn close(&self, fd: i32) -> i32 {
        let f: unsafe extern "C" fn(U, c_int) -> c_int = self.f("close");
        // SAFETY: as packetdrill calls it.
        unsafe { f(self.u(), fd) }
    }

    fn shutdown(&self, fd: i32, how: i32) -> i32 {
        let f: unsafe extern "C" fn(U, c_int, c_int) -> c_int = self.f("shutdown");
        // SAFETY: as packetdrill calls it.
        unsafe { f(self.u(), fd, how) }
    }

    fn setsockopt(&self, fd: i32, level: i32, name: i32, v: c_int) -> (i32, i32) {
        let f: unsafe extern "C" fn(U, c_int, c_int, c_int, *const c_void, u32) -> c_int =
            self.f("setsockopt");
        // SAFETY: as packetdrill calls it.
        let r = unsafe { f(self.u(), fd, level, name, (&v as *const c_int).cast(), 4) };
        (r, errno())
    }

    fn getsockopt(&self, fd: i32, level: i32, name: i32) -> (i32, c_int, u32) {
        let f: unsafe extern "C" fn(U, c_int, c_int, c_int, *mut c_void, *mut u32) -> c_int =
            self.f("getsockopt");
        let (mut v, mut len): (c_int, u32) = (-1, 4);
        // SAFETY: as packetdrill calls it.
        let r = unsafe {
            f(
                self.u(),
                fd,
                level,
                name,
                (&mut v as *mut c_int).cast(),
                &mut len,
            )
        };
        (r, v, len)
    }

    /// fcntl(fd, cmd), as packetdrill calls the variadic entry without an argument.
    fn fcntl(&self, fd: i32, cmd: i32) -> i32 {
        let f: unsafe extern "C" fn(U, c_int, c_int, ...) -> c_int = self.f("fcntl");
        // SAFETY: as packetdrill calls it.
        unsafe { f(self.u(), fd, cmd) }
    }

    /// fcntl(fd, cmd, arg).
    fn fcntl_arg(&self, fd: i32, cmd: i32, arg: c_long) -> i32 {
        let f: unsafe extern "C" fn(U, c_int, c_int, ...) -> c_int = self.f("fcntl");
        // SAFETY: as packetdrill calls it.
        unsafe { f(self.u(), fd, cmd, arg) }
    }

    /// ioctl(fd, request, &int).
    fn ioctl(&self, fd: i32, request: c_ulong) -> (i32, c_int) {
        let f: unsafe extern "C" fn(U, c_int, c_ulong, ...) -> c_int = self.f("ioctl");
        let mut v: c_int = -1;
        // SAFETY: as packetdrill calls it.
        let r = unsafe { f(self.u(), fd, request, &mut v as *mut c_int) };
        (r, v)
    }

    fn netdev_send(&self, packet: &[u8]) {
        let f: unsafe extern "C" fn(U, *const c_void, usize) -> c_int = self.f("netdev_send");
        // SAFETY: as packetdrill calls it.
        assert_eq!(
            unsafe { f(self.u(), packet.as_ptr().cast(), packet.len()) },
            0
        );
    }

    /// The next datagram the stack sent and its time, None when the
    /// stack says nothing more is coming (count 0).
    fn netdev_receive(&self) -> Option<(Vec<u8>, i64)> {
        let f: unsafe extern "C" fn(U, *mut c_void, *mut usize, *mut c_longlong) -> c_int =
            self.f("netdev_receive");
        let mut buf = vec![0u8; 65536];
        let mut count = buf.len();
        let mut time: c_longlong = 0;
        // SAFETY: as packetdrill calls it.
        let r = unsafe { f(self.u(), buf.as_mut_ptr().cast(), &mut count, &mut time) };
        assert_eq!(r, 0, "netdev_receive failed: errno {}", errno());
        buf.truncate(count);
        (count > 0).then_some((buf, time))
    }

    /// gettimeofday through the table, in microseconds.
    fn now(&self) -> i64 {
        let f: unsafe extern "C" fn(U, *mut libc::timeval, *mut c_void) -> c_int =
            self.f("gettimeofday");
        let mut tv = libc::timeval {
            tv_sec: 0,
            tv_usec: 0,
        };
        // SAFETY: as packetdrill calls it.
        assert_eq!(unsafe { f(self.u(), &mut tv, std::ptr::null_mut()) }, 0);
        tv.tv_sec * 1_000_000 + tv.tv_usec
    }

    fn usleep(&self, us: u32) {
        let f: unsafe extern "C" fn(U, c_uint) -> c_int = self.f("usleep");
        // SAFETY: as packetdrill calls it.
        assert_eq!(unsafe { f(self.u(), us) }, 0);
    }

    fn free(self) {
        let f: unsafe extern "C" fn(U) = self.f("free");
        // SAFETY: once, at the end, as packetdrill does.
        unsafe { f(self.u()) }
    }
}

fn sockaddr_in(ip: [u8; 4], port: u16) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_be_bytes(ip).to_be(),
        },
        sin_zero: [0; 8],
    }
}

/// A segment from packetdrill's side. `flags` in packetdrill's notation:
/// S, F, R, P, and `.` for ACK.
fn segment(port: u16, flags: &str, seq: u32, ack: u32, options: &[u8], payload: &[u8]) -> Vec<u8> {
    segment_between(PEER, STACK, (port, 8080), flags, seq, ack, options, payload)
}

#[allow(clippy::too_many_arguments)]
fn segment_between(
    src: [u8; 4],
    dst: [u8; 4],
    (sport, dport): (u16, u16),
    flags: &str,
    seq: u32,
    ack: u32,
    options: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    let mut tcp = TcpHeader::new(sport, dport, seq, 65535);
    tcp.syn = flags.contains('S');
    tcp.fin = flags.contains('F');
    tcp.rst = flags.contains('R');
    tcp.psh = flags.contains('P');
    tcp.ack = flags.contains('.');
    tcp.acknowledgment_number = if tcp.ack { ack } else { 0 };
    tcp.set_options_raw(options).unwrap();
    let len = (tcp.header_len() + payload.len()) as u16;
    let mut ip = Ipv4Header::new(len, 255, IpNumber::TCP, src, dst).unwrap();
    ip.dont_fragment = false;
    ip.header_checksum = ip.calc_header_checksum();
    tcp.checksum = tcp.calc_checksum_ipv4(&ip, payload).unwrap();
    let mut out = ip.to_bytes().to_vec();
    out.extend_from_slice(&tcp.to_bytes());
    out.extend_from_slice(payload);
    out
}

/// A datagram the stack sent, checked as packetdrill checks one.
#[derive(Debug)]
struct Sent {
    src: SocketAddrV4,
    dst: SocketAddrV4,
    flags: String,
    seq: u32,
    ack: u32,
    options: Vec<u8>,
    payload: Vec<u8>,
    time: i64,
}

impl Sent {
    fn parse((packet, time): (Vec<u8>, i64)) -> Sent {
        let (ip, rest) = Ipv4Header::from_slice(&packet).expect("an IPv4 header");
        assert_eq!(ip.ihl(), 5, "no IP options");
        assert_eq!(ip.protocol, IpNumber::TCP);
        assert_eq!(usize::from(ip.total_len), packet.len());
        assert_eq!(ip.header_checksum, ip.calc_header_checksum());
        let (tcp, payload) = TcpHeader::from_slice(rest).expect("a TCP header");
        assert_eq!(tcp.checksum, tcp.calc_checksum_ipv4(&ip, payload).unwrap());
        let mut flags = String::new();
        for (on, c) in [
            (tcp.syn, 'S'),
            (tcp.fin, 'F'),
            (tcp.rst, 'R'),
            (tcp.psh, 'P'),
        ] {
            if on {
                flags.push(c);
            }
        }
        if tcp.ack {
            flags.push('.');
        }
        Sent {
            src: SocketAddrV4::new(ip.source.into(), tcp.source_port),
            dst: SocketAddrV4::new(ip.destination.into(), tcp.destination_port),
            flags,
            seq: tcp.sequence_number,
            ack: tcp.acknowledgment_number,
            options: tcp.options.as_slice().to_vec(),
            payload: payload.to_vec(),
            time,
        }
    }

    /// The option kinds in order, NOPs included.
    fn kinds(&self) -> Vec<u8> {
        let (mut out, mut rest) = (Vec::new(), &self.options[..]);
        while let Some(&k) = rest.first() {
            out.push(k);
            let len = match k {
                0 | 1 => 1,
                _ => usize::from(rest[1]),
            };
            rest = &rest[len..];
        }
        out
    }

    /// TS val and ecr.
    fn timestamps(&self) -> (u32, u32) {
        let at = self
            .options
            .windows(2)
            .position(|w| w == [8, 10])
            .expect("TS");
        let o = &self.options[at + 2..at + 10];
        (
            u32::from_be_bytes(o[..4].try_into().unwrap()),
            u32::from_be_bytes(o[4..].try_into().unwrap()),
        )
    }
}

impl Pd {
    /// The next datagram, which must come.
    fn expect(&self) -> Sent {
        Sent::parse(self.netdev_receive().expect("a packet from the stack"))
    }
}

fn ts(val: u32, ecr: u32) -> [u8; 12] {
    let mut o = [1, 1, 8, 10, 0, 0, 0, 0, 0, 0, 0, 0];
    o[4..8].copy_from_slice(&val.to_be_bytes());
    o[8..].copy_from_slice(&ecr.to_be_bytes());
    o
}

fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Waits until thread `tid` sleeps (state S), as packetdrill waits for its
/// system-call thread before it goes on.
fn wait_until_sleeping(tid: i64) {
    let path = format!("/proc/self/task/{tid}/stat");
    let start = Instant::now();
    loop {
        let stat = std::fs::read_to_string(&path).unwrap_or_default();
        let state = stat.rsplit_once(") ").and_then(|(_, r)| r.chars().next());
        if state == Some('S') {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "thread {tid} never slept: {stat}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn gettid() -> i64 {
    // SAFETY: no arguments.
    unsafe { libc::syscall(libc::SYS_gettid) }
}

/// A passive open and a whole connection: SYN-ACK with Linux's options,
/// accept blocked on a second thread until the handshake's ACK arrives,
/// data both ways, a retransmission timeout, a datagram larger than the
/// MTU, FIN both ways, and the end of a script (libc close of the
/// listener's number, the clean-up RST, free).
#[test]
fn passive_open_data_timeout_and_close() {
    let pd = Pd::init(None);
    let port = 41001;
    let fd = pd.socket();
    assert_eq!(pd.fcntl(fd, libc::F_GETFL), libc::O_RDWR);
    assert_eq!(
        pd.setsockopt(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1),
        (0, 0)
    );
    assert_eq!(pd.bind(fd, STACK, 8080), (0, 0));
    assert_eq!(pd.listen(fd, 1), 0);

    // < S 0:0(0) win 65535 <mss 1000,sackOK,TS val 100 ecr 0,nop,wscale 7>
    let syn_opts = [
        2, 4, 0x03, 0xe8, 4, 2, 8, 10, 0, 0, 0, 100, 0, 0, 0, 0, 1, 3, 3, 7,
    ];
    let before = pd.now();
    pd.netdev_send(&segment(port, "S", PEER_ISN, 0, &syn_opts, &[]));
    // > S. 0:0(0) ack 1 <mss 1460,sackOK,TS val … ecr 100,nop,wscale 8>
    let synack = pd.expect();
    assert!(
        before <= synack.time && synack.time <= pd.now(),
        "{synack:?}"
    );
    assert_eq!(synack.src, SocketAddrV4::new(STACK.into(), 8080));
    assert_eq!(synack.dst, SocketAddrV4::new(PEER.into(), port));
    assert_eq!(synack.flags, "S.");
    assert_eq!(synack.ack, PEER_ISN + 1);
    assert_eq!(synack.kinds(), [2, 4, 8, 1, 3]);
    assert_eq!(&synack.options[..4], [2, 4, 0x05, 0xb4], "MSS 1460");
    assert_eq!(&synack.options[16..], [1, 3, 3, 8], "wscale 8");
    let (tsval, ecr) = synack.timestamps();
    assert_eq!(ecr, 100);
    let isn = synack.seq;
    let (p1, s1) = (PEER_ISN + 1, isn.wrapping_add(1));

    // +0...0.1 accept(3, ..., ...) = 4 on the system-call thread, while
    // the main thread sends the handshake's ACK.
    let (accepted, peer, len) = std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::channel();
        let pd = &pd;
        let blocked = scope.spawn(move || {
            tx.send(gettid()).unwrap();
            pd.accept(fd)
        });
        wait_until_sleeping(rx.recv().unwrap());
        pd.usleep(20_000);
        pd.netdev_send(&segment(port, ".", p1, s1, &ts(110, tsval), &[]));
        blocked.join().unwrap()
    });
    assert!(accepted >= 0, "accept: errno {}", errno());
    assert_eq!(peer, SocketAddrV4::new(PEER.into(), port));
    assert_eq!(len, 16);

    // < P. 1:1001(1000) ack 1  →  > . 1:1(0) ack 1001 <nop,nop,TS …>
    let data_in = pattern(1000, 7);
    pd.netdev_send(&segment(port, "P.", p1, s1, &ts(120, tsval), &data_in));
    let ack = pd.expect();
    assert_eq!((ack.flags.as_str(), ack.seq, ack.ack), (".", s1, p1 + 1000));
    assert_eq!(ack.kinds(), [1, 1, 8]);
    assert_eq!(ack.timestamps().1, 120);
    assert_eq!(pd.ioctl(accepted, libc::FIONREAD), (0, 1000));
    let (n, got, _) = pd.read(accepted, 4000);
    assert_eq!((n, got), (1000, data_in));

    // write(4, ..., 3000) = 3000: segments of at most the peer's MSS less
    // the timestamps, PSH on the last. Unacknowledged, they come again:
    // a tail loss probe may resend the tail first, then the
    // retransmission timeout resends the first segment.
    let data_out = pattern(3000, 3);
    assert_eq!(pd.write(accepted, &data_out), 3000);
    let mut sent = Vec::new();
    let mut first = None;
    while sent.len() < data_out.len() {
        let seg = pd.expect();
        assert_eq!(seg.seq, s1.wrapping_add(sent.len() as u32), "{seg:?}");
        assert!(seg.payload.len() <= 1000 - 12);
        first.get_or_insert(seg.time);
        sent.extend_from_slice(&seg.payload);
        let last = sent.len() == data_out.len();
        assert_eq!(seg.flags, if last { "P." } else { "." });
    }
    assert_eq!(sent, data_out);
    let again = loop {
        let seg = pd.expect();
        let at = seg.seq.wrapping_sub(s1) as usize;
        assert!(at + seg.payload.len() <= data_out.len(), "{seg:?}");
        assert_eq!(seg.payload, data_out[at..at + seg.payload.len()]);
        if at == 0 {
            break seg;
        }
    };
    let rto = Duration::from_micros((again.time - first.unwrap()) as u64);
    assert!(
        rto >= Duration::from_millis(190) && rto < Duration::from_secs(3),
        "RTO {rto:?}"
    );
    let s2 = s1.wrapping_add(3000);
    pd.netdev_send(&segment(port, ".", p1 + 1000, s2, &ts(130, tsval), &[]));

    // One datagram of 4040 bytes, past the MTU: packetdrill does not
    // segment what it injects.
    let big = pattern(4000, 11);
    pd.netdev_send(&segment(port, ".", p1 + 1000, s2, &ts(140, tsval), &big));
    let ack = pd.expect();
    assert_eq!((ack.flags.as_str(), ack.ack), (".", p1 + 5000), "{ack:?}");

    // < F. 5001:5001(0) ack 3001  →  > . ack 5002; the data and then the
    // end of the stream are read. (Reading 4000 bytes first would make
    // this stack send a window update, which Linux sends only once the
    // window has shrunk to half of its maximum: a difference in src/tcp.)
    pd.netdev_send(&segment(port, "F.", p1 + 5000, s2, &ts(150, tsval), &[]));
    let ack = pd.expect();
    assert_eq!((ack.flags.as_str(), ack.ack), (".", p1 + 5001), "{ack:?}");
    assert_eq!(pd.ioctl(accepted, libc::FIONREAD), (0, 4000));
    let (n, got, _) = pd.read(accepted, 8000);
    assert_eq!((n, got), (4000, big));
    assert_eq!(pd.read(accepted, 100).0, 0);
    assert_eq!(pd.close(accepted), 0);
    let fin = pd.expect();
    assert_eq!(
        (fin.flags.as_str(), fin.seq, fin.ack),
        ("F.", s2, p1 + 5001)
    );
    pd.netdev_send(&segment(port, ".", p1 + 5001, s2 + 1, &ts(160, tsval), &[]));
    let (r, _, e) = pd.read(accepted, 10);
    assert_eq!((r, e), (-1, libc::EBADF), "a closed descriptor");

    // The end of a script: packetdrill closes the listener's number with
    // the C library's close() (it must be a real descriptor), injects a
    // RST for the connection it knew, and frees the table.
    // SAFETY: the listener's placeholder descriptor, as packetdrill closes it.
    assert_eq!(unsafe { libc::close(fd) }, 0, "close: {}", errno());
    pd.netdev_send(&segment(port, "R.", p1 + 5001, s2 + 1, &[], &[]));
    pd.free();
}

/// An active open with a blocking connect on the system-call thread, a
/// peer without timestamps, options read back, a non-blocking connect,
/// and shutdown(SHUT_WR).
#[test]
fn active_open_connect_options_and_shutdown() {
    let pd = Pd::init(Some(
        "local_ip=192.168.0.1,netmask=255.255.0.0,remote_ip=192.0.2.1",
    ));
    let fd = pd.socket();
    let (r, e, syn, synack) = std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::channel();
        let pd = &pd;
        let blocked = scope.spawn(move || {
            tx.send(gettid()).unwrap();
            pd.connect(fd, PEER, 8080)
        });
        wait_until_sleeping(rx.recv().unwrap());
        // > S 0:0(0) <mss 1460,sackOK,TS val … ecr 0,nop,wscale 8>
        let syn = pd.expect();
        assert_eq!(syn.flags, "S");
        assert_eq!(syn.src.ip(), &Ipv4Addr::from(STACK));
        assert_eq!(syn.dst, SocketAddrV4::new(PEER.into(), 8080));
        assert_eq!(syn.kinds(), [2, 4, 8, 1, 3]);
        assert_eq!(syn.timestamps().1, 0);
        // < S. 0:0(0) ack 1 <mss 1100,nop,nop,sackOK,nop,wscale 6>
        let opts = [2, 4, 0x04, 0x4c, 1, 1, 4, 2, 1, 3, 3, 6];
        let synack = segment_between(
            PEER,
            STACK,
            (8080, syn.src.port()),
            "S.",
            PEER_ISN,
            syn.seq.wrapping_add(1),
            &opts,
            &[],
        );
        pd.netdev_send(&synack);
        let (r, e) = blocked.join().unwrap();
        (r, e, syn, pd.expect())
    });
    assert_eq!((r, e), (0, 0), "connect");
    let s1 = syn.seq.wrapping_add(1);
    let p1 = PEER_ISN + 1;
    // > . 1:1(0) ack 1, no options (the peer offered no timestamps).
    assert_eq!(
        (synack.flags.as_str(), synack.seq, synack.ack),
        (".", s1, p1)
    );
    assert!(synack.options.is_empty(), "{synack:?}");
    // getsockopt(TCP_MAXSEG) is the peer's MSS; the length stays 4.
    assert_eq!(
        pd.getsockopt(fd, libc::IPPROTO_TCP, libc::TCP_MAXSEG),
        (0, 1100, 4)
    );

    // write → > P. 1:11(10) ack 1
    assert_eq!(pd.write(fd, b"0123456789"), 10);
    let data = pd.expect();
    assert_eq!(
        (data.flags.as_str(), data.seq, data.payload.as_slice()),
        ("P.", s1, &b"0123456789"[..])
    );
    let port = syn.src.port();
    let reply = |flags: &str, seq: u32, ack: u32| {
        segment_between(PEER, STACK, (8080, port), flags, seq, ack, &[], &[])
    };
    pd.netdev_send(&reply(".", p1, s1 + 10));

    // shutdown(SHUT_WR) → > F. 11:11(0) ack 1; a write after it is EPIPE.
    assert_eq!(pd.shutdown(fd, libc::SHUT_WR), 0);
    let fin = pd.expect();
    assert_eq!((fin.flags.as_str(), fin.seq), ("F.", s1 + 10));
    pd.netdev_send(&reply(".", p1, s1 + 11));

    // A second socket, non-blocking (fcntl with an argument): connect is
    // EINPROGRESS and its SYN goes out.
    let nb = pd.socket();
    assert_eq!(
        pd.fcntl_arg(
            nb,
            libc::F_SETFL,
            (libc::O_RDWR | libc::O_NONBLOCK) as c_long
        ),
        0
    );
    assert_eq!(pd.fcntl(nb, libc::F_GETFL), libc::O_RDWR | libc::O_NONBLOCK);
    assert_eq!(pd.connect(nb, PEER, 8080), (-1, libc::EINPROGRESS));
    assert_eq!(pd.expect().flags, "S");
    // Errors come back in the calling thread's errno.
    assert_eq!(pd.bind(12345, STACK, 1), (-1, libc::EBADF));
    assert_eq!(
        pd.setsockopt(fd, libc::SOL_SOCKET, 12345, 1),
        (-1, libc::ENOPROTOOPT)
    );
    // SAFETY: the placeholders, closed as packetdrill does at the end.
    unsafe {
        assert_eq!(libc::close(fd), 0);
        assert_eq!(libc::close(nb), 0);
    }
    pd.free();
}

/// init may run again in the same image: each table has its own stack
/// (here at another address, from --so_flags) and its own descriptors;
/// with nothing to send, netdev_receive gives up (count 0) instead of
/// blocking for ever.
#[test]
fn init_again_other_address_and_nothing_to_receive() {
    let a = Pd::init(None);
    let b = Pd::init(Some("local_ip=10.9.0.2,netmask=255.255.255.0,mtu=1,junk"));
    assert_ne!(a.u(), b.u());
    let (fa, fb) = (a.socket(), b.socket());
    assert_ne!(fa, fb, "each number is a descriptor of its own");
    assert_eq!(b.bind(fb, [10, 9, 0, 2], 8080), (0, 0));
    assert_eq!(b.listen(fb, 5), 0);
    let syn = segment_between(
        PEER,
        [10, 9, 0, 2],
        (40000, 8080),
        "S",
        1,
        0,
        &[2, 4, 5, 0xb4],
        &[],
    );
    b.netdev_send(&syn);
    let synack = b.expect();
    assert_eq!(
        synack.src,
        SocketAddrV4::new(Ipv4Addr::new(10, 9, 0, 2), 8080)
    );
    assert_eq!(synack.kinds(), [2], "only what the SYN offered: <mss 1460>");
    // a's listener hears nothing of it.
    assert_eq!(a.bind(fa, STACK, 8080), (0, 0));
    assert_eq!(a.listen(fa, 5), 0);
    let start = Instant::now();
    assert!(a.netdev_receive().is_none());
    assert!(start.elapsed() < Duration::from_secs(10));
    // SAFETY: the placeholders, closed as packetdrill does at the end.
    unsafe {
        assert_eq!(libc::close(fa), 0);
        assert_eq!(libc::close(fb), 0);
    }
    a.free();
    b.free();
}
