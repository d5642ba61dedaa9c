//! The stack under measurement ("subject"): rstcp on a TUN device, or the
//! kernel's sockets in a namespace. Both hand out integer descriptors, so the
//! servers in `workloads` are written once for both.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;

use rstcp::api::{MsgFlags, SockOpt, Sockets};

/// Which stack serves.
#[derive(Clone)]
pub enum Subject {
    /// rstcp's sockets (the runtime owns a TUN device in its namespace).
    Rstcp(Arc<Sockets>),
    /// The kernel's sockets, created inside namespace `ns`.
    Kernel { ns: String },
}

fn rs<T>(r: rstcp::error::Result<T>) -> io::Result<T> {
    r.map_err(io::Error::from)
}

fn os(rc: isize) -> io::Result<usize> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc as usize)
    }
}

impl Subject {
    /// A listening socket on 0.0.0.0:`port` with the largest backlog.
    pub fn listen(&self, port: u16) -> io::Result<i32> {
        let any = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port);
        match self {
            Subject::Rstcp(s) => {
                let fd = rs(s.socket(false, None))?;
                rs(s.set_option(fd, SockOpt::ReuseAddr(true)))?;
                rs(s.bind(fd, any))?;
                rs(s.listen(fd, 4096))?;
                Ok(fd)
            }
            Subject::Kernel { ns } => {
                let ns = ns.clone();
                crate::netns::in_ns(&ns, move || {
                    let l = std::net::TcpListener::bind(any)?;
                    use std::os::fd::IntoRawFd;
                    let fd = l.into_raw_fd();
                    // std listens with 128; ask for the largest queue.
                    // SAFETY: listen on a descriptor we own.
                    os(unsafe { libc::listen(fd, 65535) } as isize)?;
                    Ok(fd)
                })
            }
        }
    }

    /// Accepts one connection (blocking).
    pub fn accept(&self, fd: i32) -> io::Result<i32> {
        match self {
            Subject::Rstcp(s) => rs(s.accept(fd, false, None)).map(|(c, _)| c),
            Subject::Kernel { .. } => {
                // SAFETY: accept on a listening descriptor, no address wanted.
                let c = unsafe { libc::accept(fd, std::ptr::null_mut(), std::ptr::null_mut()) };
                os(c as isize).map(|c| c as i32)
            }
        }
    }

    /// Reads what has arrived (0 at end of stream).
    pub fn recv(&self, fd: i32, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Subject::Rstcp(s) => rs(s.recv(fd, buf, MsgFlags::default())),
            // SAFETY: buf is ours for its length.
            Subject::Kernel { .. } => {
                os(unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) })
            }
        }
    }

    /// Sends all of `buf`.
    pub fn send_all(&self, fd: i32, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            let n = match self {
                Subject::Rstcp(s) => rs(s.send(fd, buf, MsgFlags::default()))?,
                // SAFETY: buf is ours for its length.
                Subject::Kernel { .. } => os(unsafe {
                    libc::send(fd, buf.as_ptr().cast(), buf.len(), libc::MSG_NOSIGNAL)
                })?,
            };
            buf = &buf[n..];
        }
        Ok(())
    }

    /// Turns Nagle off.
    pub fn nodelay(&self, fd: i32) {
        match self {
            Subject::Rstcp(s) => {
                let _ = s.set_option(fd, SockOpt::NoDelay(true));
            }
            Subject::Kernel { .. } => {
                let one: libc::c_int = 1;
                // SAFETY: an int option on a descriptor we own.
                unsafe {
                    libc::setsockopt(
                        fd,
                        libc::IPPROTO_TCP,
                        libc::TCP_NODELAY,
                        (&one as *const libc::c_int).cast(),
                        4,
                    )
                };
            }
        }
    }

    /// Wakes threads blocked in accept on `fd` and closes it.
    pub fn close_listener(&self, fd: i32) {
        if let Subject::Kernel { .. } = self {
            // Linux wakes a blocked accept on shutdown, not on close.
            // SAFETY: plain syscall on our descriptor.
            unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
        }
        self.close(fd);
    }

    /// Closes a descriptor.
    pub fn close(&self, fd: i32) {
        match self {
            Subject::Rstcp(s) => {
                let _ = s.close(fd);
            }
            // SAFETY: closing a descriptor we own.
            Subject::Kernel { .. } => unsafe {
                libc::close(fd);
            },
        }
    }
}
