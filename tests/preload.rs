//! Unmodified programs under the LD_PRELOAD shim (`rstcp-run`), each test
//! in its own namespace with a TUN device whose kernel side is 10.77.0.1
//! and the stack 10.77.0.2: curl, python3's http.server, nc, iperf3, a
//! Python socket-module program and a C program of epoll/poll/select/fork.
//! Payloads are compared byte for byte; that a connection went through
//! rstcp shows in the peer seeing 10.77.0.2, which only the stack has.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::Netns;

const KERNEL: &str = "10.77.0.1";
const OURS: &str = "10.77.0.2";

/// target/release (or debug), where the shim and launcher are built.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

/// rstcp-run, brought up to date once per run (a no-op when it is): the
/// shim is another package, which `cargo test` alone would not rebuild.
fn launcher() -> PathBuf {
    static BUILT: std::sync::Once = std::sync::Once::new();
    let dir = target_dir();
    BUILT.call_once(|| {
        let release = dir.ends_with("release");
        let mut cmd = Command::new(option_env!("CARGO").unwrap_or("cargo"));
        cmd.args(["build", "-p", "rstcp-preload"])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if release {
            cmd.arg("--release");
        }
        assert!(cmd.status().unwrap().success(), "building the shim failed");
    });
    dir.join("rstcp-run")
}

/// A namespace with a TUN device made beforehand, so that kernel peers can
/// bind 10.77.0.1 before the preloaded program attaches to the device.
struct Lab {
    ns: Netns,
    dev: String,
    dir: PathBuf,
}

impl Lab {
    fn new(tag: &str) -> Lab {
        Lab::with_device(tag, &[])
    }

    /// A lab whose TUN device is made with `extra` flags of `ip tuntap`
    /// (`multi_queue`, for shards).
    fn with_device(tag: &str, extra: &[&str]) -> Lab {
        let ns = Netns::new(tag);
        let dev = ns.dev_name();
        let mut add = vec!["ip", "tuntap", "add", "dev", &dev, "mode", "tun"];
        add.extend_from_slice(extra);
        ns.exec(&add);
        ns.exec(&["ip", "addr", "add", "10.77.0.1/24", "dev", &dev]);
        ns.exec(&["ip", "link", "set", &dev, "up"]);
        let dir = std::env::temp_dir().join(&ns.name);
        std::fs::create_dir_all(&dir).unwrap();
        Lab { ns, dev, dir }
    }

    /// `program args…` under the shim, inside the namespace, bounded in time.
    fn shim(&self, program: &str, args: &[&str]) -> Command {
        let mut c = self.ns.command("timeout");
        c.arg("60")
            .arg(launcher())
            .args(["--tun", &self.dev, "--"])
            .arg(program)
            .args(args);
        c
    }

    /// `program args…` on the kernel's side, inside the namespace.
    fn kernel(&self, program: &str, args: &[&str]) -> Command {
        let mut c = self.ns.command("timeout");
        c.arg("60").arg(program).args(args);
        c
    }

    /// Waits until something accepts connections on ip:port (from the
    /// kernel's side of the namespace).
    fn wait_port(&self, ip: &str, port: u16) {
        let probe = format!(
            "import socket,time,sys\nend=time.time()+15\nwhile True:\n    try:\n        socket.create_connection(('{ip}',{port}),timeout=1).close(); sys.exit(0)\n    except OSError:\n        if time.time()>end: sys.exit(1)\n        time.sleep(0.05)\n"
        );
        let ok = self.kernel("python3", &["-c", &probe]).status().unwrap();
        assert!(ok.success(), "nothing listens on {ip}:{port}");
    }

    /// A file of `len` pseudo-random bytes in the lab's directory.
    fn payload(&self, name: &str, len: usize, seed: u64) -> (PathBuf, Vec<u8>) {
        let mut x = seed | 1;
        let data: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let path = self.dir.join(name);
        std::fs::write(&path, &data).unwrap();
        (path, data)
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).to_string_lossy().into_owned()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs `cmd` to completion with stdin from `input`, capturing its output.
fn run(mut cmd: Command, input: Option<&Path>) -> Output {
    match input {
        Some(p) => cmd.stdin(std::fs::File::open(p).unwrap()),
        None => cmd.stdin(Stdio::null()),
    };
    cmd.output().unwrap()
}

fn check(out: &Output, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn assert_same_file(path: &Path, want: &[u8], what: &str) {
    let got = std::fs::read(path).unwrap_or_default();
    assert!(
        got == want,
        "{what}: {} bytes received, {} sent, first difference at {:?}",
        got.len(),
        want.len(),
        got.iter().zip(want).position(|(a, b)| a != b)
    );
}

/// A server process whose output is collected line by line as it comes.
struct Server {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

/// Spawns a server; stdout and stderr are read as they come (so that a
/// test can wait for a line), and kept for later inspection.
fn spawn(mut cmd: Command) -> Server {
    // A group of its own, so that finish() ends `timeout` and the server
    // under it together.
    let mut child = cmd
        .process_group(0)
        .env("RSTCP_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, lines) = std::sync::mpsc::channel();
    let out: Box<dyn Read + Send> = Box::new(child.stdout.take().unwrap());
    let err: Box<dyn Read + Send> = Box::new(child.stderr.take().unwrap());
    for stream in [out, err] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
    }
    Server {
        child,
        lines,
        seen: Vec::new(),
    }
}

impl Server {
    /// Waits (at most 15 s) for a line containing `text`.
    fn wait_for(&mut self, text: &str) {
        let end = Instant::now() + Duration::from_secs(15);
        while !self.seen.iter().any(|l| l.contains(text)) {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => self.seen.push(l),
                Err(_) => panic!("no line with {text:?}; got:\n{}", self.seen.join("\n")),
            }
        }
    }

    /// Ends the server and returns everything it printed.
    fn finish(mut self) -> String {
        // SAFETY: signalling the process group this test created.
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
        let _ = self.child.wait();
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(l);
        }
        self.seen.join("\n")
    }
}

const MB: usize = 1 << 20;

#[test]
fn curl_downloads_50_mb_from_a_kernel_http_server() {
    if common::skip_without_root() {
        return;
    }
    let lab = Lab::new("pl-curl");
    let (_, data) = lab.payload("blob", 50 * MB, 1);
    let server = spawn(lab.kernel(
        "python3",
        &[
            "-m",
            "http.server",
            "8000",
            "--bind",
            KERNEL,
            "--directory",
            &lab.path(""),
        ],
    ));
    lab.wait_port(KERNEL, 8000);
    let t = Instant::now();
    let out = run(
        lab.shim(
            "curl",
            &["-sS", "-o", &lab.path("got"), "http://10.77.0.1:8000/blob"],
        ),
        None,
    );
    check(&out, "curl under the shim");
    let took = t.elapsed();
    assert_same_file(&lab.dir.join("got"), &data, "curl's download");
    let log = server.finish();
    assert!(
        log.contains(&format!("{OURS} - - ")),
        "the request did not come through rstcp:\n{log}"
    );
    eprintln!(
        "curl 50 MB over rstcp: {took:?} ({:.0} Mbit/s)",
        400.0 / took.as_secs_f64()
    );
}

#[test]
fn a_preloaded_http_server_serves_parallel_kernel_curls_and_loopback() {
    if common::skip_without_root() {
        return;
    }
    let lab = Lab::new("pl-httpd");
    let (_, data) = lab.payload("blob", 50 * MB, 2);
    let mut server = spawn(lab.shim(
        "python3",
        &[
            "-m",
            "http.server",
            "8080",
            "--bind",
            "0.0.0.0",
            "--directory",
            &lab.path(""),
        ],
    ));
    server.wait_for("through rstcp and the kernel");
    let clients: Vec<_> = (0..4)
        .map(|i| {
            let out = lab.path(&format!("got{i}"));
            lab.kernel("curl", &["-sS", "-o", &out, "http://10.77.0.2:8080/blob"])
                .stdin(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    // INADDR_ANY also answers on loopback, through the kernel.
    let lo = run(
        lab.kernel(
            "curl",
            &["-sS", "-o", &lab.path("lo"), "http://127.0.0.1:8080/blob"],
        ),
        None,
    );
    check(&lo, "curl to 127.0.0.1");
    for (i, mut c) in clients.into_iter().enumerate() {
        assert!(c.wait().unwrap().success(), "kernel curl {i} failed");
        assert_same_file(&lab.dir.join(format!("got{i}")), &data, "parallel download");
    }
    assert_same_file(&lab.dir.join("lo"), &data, "loopback download");
    let log = server.finish();
    assert_eq!(log.matches(&format!("{KERNEL} - - ")).count(), 4, "{log}");
    assert_eq!(log.matches("127.0.0.1 - - ").count(), 1, "{log}");
}

#[test]
fn nc_in_both_roles_with_half_close() {
    if common::skip_without_root() {
        return;
    }
    let lab = Lab::new("pl-nc");
    let (file, data) = lab.payload("up", 3 * MB, 3);
    // Client under the shim, stdin to the socket; -N half-closes at EOF and
    // the kernel side answers with the digest of what it received.
    let sha = spawn(lab.kernel(
        "python3",
        &[
            "scripts/peers/sha_server.py",
            KERNEL,
            "9000",
            "--timeout",
            "30",
        ],
    ));
    lab.wait_kernel_listener(9000);
    let out = run(lab.shim("nc", &["-N", KERNEL, "9000"]), Some(&file));
    let reply = check(&out, "nc -N under the shim");
    let digest = sha256(&data);
    assert!(
        reply.contains(&digest) && reply.contains(&format!("bytes {}", data.len())),
        "kernel side saw something else: {reply:?} (want {digest})"
    );
    sha.finish();

    // Server under the shim on the stack's address, client in the kernel.
    // nc -l takes one connection, so wait for the shim's word that it
    // listens rather than probing the port.
    let got = lab.path("down");
    let mut server = spawn(lab.shim("sh", &["-c", &format!("exec nc -l {OURS} 9001 > {got}")]));
    server.wait_for("listens on 10.77.0.2:9001 through rstcp");
    let out = run(lab.kernel("nc", &["-N", OURS, "9001"]), Some(&file));
    check(&out, "kernel nc to the preloaded nc -l");
    let status = server.child.wait().unwrap();
    assert!(status.success(), "preloaded nc -l: {status}");
    assert_same_file(Path::new(&got), &data, "nc -l under the shim");
}

impl Lab {
    /// Waits until a kernel socket listens on `port` in the namespace,
    /// without connecting (one-shot servers take a single connection).
    fn wait_kernel_listener(&self, port: u16) {
        let end = Instant::now() + Duration::from_secs(15);
        loop {
            let out = self
                .ns
                .try_exec(&["ss", "-Hltn", &format!("sport = :{port}")]);
            if !String::from_utf8_lossy(&out.stdout).trim().is_empty() {
                return;
            }
            assert!(Instant::now() < end, "nothing listens on port {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn sha256(data: &[u8]) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

/// Starts scripts/peers/echo_server.py on the kernel's side.
fn echo_server(lab: &Lab, port: u16) -> Server {
    let mut c = spawn(lab.kernel(
        "python3",
        &[
            "scripts/peers/echo_server.py",
            KERNEL,
            &port.to_string(),
            "--timeout",
            "60",
        ],
    ));
    c.wait_for("listening");
    c
}

fn report(out: &Output, what: &str) {
    let text = check(out, what);
    eprintln!("{what}:\n{text}");
    assert!(
        text.lines()
            .any(|l| l.ends_with(" 0 failed") && l.contains(" passed, ")),
        "{what} printed no clean summary:\n{text}"
    );
}

#[test]
fn python_socket_module_under_the_shim() {
    if common::skip_without_root() {
        return;
    }
    let lab = Lab::new("pl-py");
    let echo = echo_server(&lab, 7000);
    let out = run(
        lab.shim(
            "python3",
            &["tests/preload/py_socket.py", KERNEL, "7000", OURS],
        ),
        None,
    );
    echo.finish();
    report(&out, "py_socket.py under the shim");
}

#[test]
fn python_socket_module_under_the_shim_with_two_shards() {
    if common::skip_without_root() {
        return;
    }
    let lab = Lab::with_device("pl-pysh", &["multi_queue"]);
    let echo = echo_server(&lab, 7000);
    let mut cmd = lab.shim(
        "python3",
        &["tests/preload/py_socket.py", KERNEL, "7000", OURS],
    );
    cmd.env("RSTCP_SHARDS", "2").env("RSTCP_LOG", "info");
    let out = run(cmd, None);
    echo.finish();
    report(&out, "py_socket.py under the shim, two shards");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("2 queues"), "not sharded:\n{log}");
}

#[test]
fn a_program_waiting_in_epoll_or_poll_takes_its_answers_in_itself() {
    waiting_program_takes_answers_in("pl-lead", 7005, 1);
}

#[test]
fn a_program_waiting_in_epoll_or_poll_takes_its_answers_in_itself_with_two_shards() {
    waiting_program_takes_answers_in("pl-lead2", 7006, 2);
}

/// py_leader.py under the shim with the stack in `shards` shards: the
/// thread waiting in epoll or poll leads every shard's device queue.
fn waiting_program_takes_answers_in(tag: &str, port: u16, shards: usize) {
    if common::skip_without_root() {
        return;
    }
    let lab = if shards > 1 {
        Lab::with_device(tag, &["multi_queue"])
    } else {
        Lab::new(tag)
    };
    let mut c = spawn(lab.kernel(
        "python3",
        &[
            "scripts/peers/echo_server.py",
            KERNEL,
            &port.to_string(),
            "--timeout",
            "60",
            "--delay",
            "1",
        ],
    ));
    c.wait_for("listening");
    let stat = target_dir().join("rstcp-stat");
    let mut cmd = lab.shim(
        "python3",
        &[
            "tests/preload/py_leader.py",
            KERNEL,
            &port.to_string(),
            stat.to_str().unwrap(),
        ],
    );
    cmd.env("RSTCP_STAT_DIR", lab.path("stat"));
    if shards > 1 {
        cmd.env("RSTCP_SHARDS", shards.to_string())
            .env("RSTCP_LOG", "info");
    }
    let out = run(cmd, None);
    c.finish();
    report(
        &out,
        &format!("py_leader.py under the shim, {shards} shard(s)"),
    );
    if shards > 1 {
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(
            log.contains(&format!("{shards} queues")),
            "not sharded:\n{log}"
        );
    }
}

/// Builds tests/preload/NAME.c and runs it under the shim against a kernel
/// echo server on `port` (port + 1 stays closed).
fn c_program(tag: &str, name: &str, port: u16) {
    c_program_on(tag, name, port, 1);
}

/// [`c_program`] with the stack in `shards` shards.
fn c_program_on(tag: &str, name: &str, port: u16, shards: usize) {
    let lab = if shards > 1 {
        Lab::with_device(tag, &["multi_queue"])
    } else {
        Lab::new(tag)
    };
    let bin = lab.path(name);
    let cc = Command::new("gcc")
        .args(["-O2", "-Wall", "-Wextra", "-Werror", "-pthread", "-o", &bin])
        .arg(format!("tests/preload/{name}.c"))
        .output()
        .unwrap();
    check(&cc, &format!("gcc {name}.c"));
    let echo = echo_server(&lab, port);
    let mut cmd = lab.shim(&bin, &[KERNEL, &port.to_string(), OURS]);
    if shards > 1 {
        cmd.env("RSTCP_SHARDS", shards.to_string())
            .env("RSTCP_LOG", "info");
    }
    let out = run(cmd, None);
    echo.finish();
    report(&out, &format!("{name} under the shim, {shards} shard(s)"));
    if shards > 1 {
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(
            log.contains(&format!("{shards} queues")),
            "not sharded:\n{log}"
        );
    }
}

#[test]
fn c_epoll_poll_select_and_fork_under_the_shim_with_two_shards() {
    if common::skip_without_root() {
        return;
    }
    c_program_on("pl-csh", "events", 7150, 2);
}

#[test]
fn c_epoll_poll_select_and_fork_under_the_shim() {
    if common::skip_without_root() {
        return;
    }
    c_program("pl-c", "events", 7100);
}

#[test]
fn c_sendfile_vectors_batches_options_and_close_range_under_the_shim() {
    if common::skip_without_root() {
        return;
    }
    c_program("pl-calls", "calls", 7200);
}

#[test]
fn c_edge_cases_found_in_review_under_the_shim() {
    if common::skip_without_root() {
        return;
    }
    c_program("pl-edge", "edge", 7400);
}

/// iperf3's receiver figure in Mbit/s.
fn iperf_mbits(out: &str) -> f64 {
    let line = out
        .lines()
        .rev()
        .find(|l| l.contains("receiver"))
        .unwrap_or_else(|| panic!("no receiver line in iperf3 output:\n{out}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    let i = words
        .iter()
        .position(|w| w.ends_with("bits/sec"))
        .expect("a rate");
    let v: f64 = words[i - 1].parse().unwrap();
    match words[i] {
        "Gbits/sec" => v * 1000.0,
        "Mbits/sec" => v,
        "Kbits/sec" => v / 1000.0,
        _ => v / 1e6,
    }
}

/// iperf3 for 2 s from `client` to `server_ip`:`port` (reversed: the
/// server sends); the receiver's Mbit/s.
fn iperf(client: Command, reverse: bool) -> f64 {
    let mut client = client;
    if reverse {
        client.arg("-R");
    }
    iperf_mbits(&check(&run(client, None), "iperf3 client"))
}

/// The kernel to itself over a veth pair between two namespaces: the
/// reference path for the figures beside it.
fn kernel_veth_mbits(lab: &Lab, reverse: bool) -> f64 {
    let other = Netns::new("pl-iperf-peer");
    let (a, b) = (lab.ns.dev_name(), other.dev_name());
    lab.ns.exec(&[
        "ip",
        "link",
        "add",
        &a,
        "type",
        "veth",
        "peer",
        "name",
        &b,
        "netns",
        &other.name,
    ]);
    lab.ns
        .exec(&["ip", "addr", "add", "10.78.0.1/24", "dev", &a]);
    lab.ns.exec(&["ip", "link", "set", &a, "up"]);
    other.exec(&["ip", "addr", "add", "10.78.0.2/24", "dev", &b]);
    other.exec(&["ip", "link", "set", &b, "up"]);
    let mut server = other.command("timeout");
    server.args(["60", "iperf3", "-s", "-1", "-B", "10.78.0.2", "-p", "5209"]);
    let server = spawn(server);
    let end = Instant::now() + Duration::from_secs(15);
    while String::from_utf8_lossy(&other.try_exec(&["ss", "-Hltn", "sport = :5209"]).stdout)
        .trim()
        .is_empty()
    {
        assert!(Instant::now() < end, "the veth iperf3 server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mbits = iperf(
        lab.kernel(
            "iperf3",
            &["-c", "10.78.0.2", "-p", "5209", "-t", "2", "-f", "m"],
        ),
        reverse,
    );
    server.finish();
    mbits
}

#[test]
fn iperf3_both_ways_beside_the_kernel() {
    if common::skip_without_root() {
        return;
    }
    let lab = Lab::new("pl-iperf");
    let mut rows = Vec::new();
    for reverse in [false, true] {
        // Client under the shim, kernel server.
        let server = spawn(lab.kernel("iperf3", &["-s", "-1", "-B", KERNEL, "-p", "5201"]));
        lab.wait_kernel_listener(5201);
        let client = lab.shim(
            "iperf3",
            &["-c", KERNEL, "-p", "5201", "-t", "2", "-f", "m"],
        );
        let as_client = iperf(client, reverse);
        server.finish();
        // Server under the shim (AF_INET on 0.0.0.0), kernel client.
        let mut server = spawn(lab.shim("iperf3", &["-s", "-1", "-4", "-p", "5203"]));
        server.wait_for("listens on port 5203");
        let client = lab.kernel("iperf3", &["-c", OURS, "-p", "5203", "-t", "2", "-f", "m"]);
        let as_server = iperf(client, reverse);
        let log = server.finish();
        assert!(
            log.contains(KERNEL),
            "the preloaded server saw no kernel client:\n{log}"
        );
        let kernel = kernel_veth_mbits(&lab, reverse);
        rows.push((reverse, as_client, as_server, kernel));
    }
    for (reverse, as_client, as_server, kernel) in rows {
        let (c, s) = if reverse {
            ("receives", "sends")
        } else {
            ("sends", "receives")
        };
        eprintln!(
            "iperf3: preloaded client {c} {as_client:.0} Mbit/s ({:.2}x), preloaded server {s} \
             {as_server:.0} Mbit/s ({:.2}x); kernel over veth {kernel:.0} Mbit/s",
            as_client / kernel,
            as_server / kernel
        );
        assert!(as_client > 0.0 && as_server > 0.0);
    }
}

/// A server that binds 0.0.0.0, forks, and accepts in the child (the
/// prefork pattern): the child serves through the kernel half, says once
/// why the rstcp half is not its own, and never touches the parent's copy
/// of the stack.
const PREFORK: &str = r#"
import os, socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 7300))
s.listen(8)
print("listening", flush=True)
pid = os.fork()
if pid == 0:
    c, peer = s.accept()
    c.sendall(b"child served " + peer[0].encode() + b"\n")
    c.close()
    os._exit(0)
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"#;

#[test]
fn a_forked_child_accepts_on_an_inherited_listener_through_the_kernel() {
    if common::skip_without_root() {
        return;
    }
    let lab = Lab::new("pl-fork");
    let mut server = spawn(lab.shim("python3", &["-c", PREFORK]));
    server.wait_for("listening");
    let out = run(lab.kernel("nc", &["-N", "127.0.0.1", "7300"]), None);
    let reply = check(&out, "kernel nc to the child");
    assert_eq!(reply.trim(), "child served 127.0.0.1");
    let status = server.child.wait().unwrap();
    let log = server.finish();
    assert!(
        status.success(),
        "the prefork server failed ({status}):\n{log}"
    );
    assert!(
        log.contains("was forked from the one that runs the stack"),
        "no word on the inherited listener:\n{log}"
    );
}

#[test]
fn the_launcher_reports_its_errors_by_exit_status() {
    if common::skip_without_root() {
        return;
    }
    let status = |args: &[&str]| {
        Command::new(launcher())
            .args(args)
            .stderr(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .code()
    };
    assert_eq!(status(&[]), Some(2), "no program");
    assert_eq!(status(&["--addr", "nonsense", "true"]), Some(2));
    assert_eq!(status(&["--bogus", "true"]), Some(2));
    assert_eq!(status(&["/nonexistent/program"]), Some(127));
    assert_eq!(status(&["--lib", "/nonexistent.so", "true"]), Some(1));
    assert_eq!(
        status(&["--", "false"]),
        Some(1),
        "the program's own status"
    );
    assert_eq!(status(&["true"]), Some(0));
    let mut help = String::new();
    Command::new(launcher())
        .arg("--help")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
        .stdout
        .unwrap()
        .read_to_string(&mut help)
        .unwrap();
    assert!(help.contains("usage: rstcp-run"));
}
