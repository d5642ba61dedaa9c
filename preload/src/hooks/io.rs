//! Reading and writing: read/write, recv/send and their vector, message,
//! batch and fortified forms, and sendfile/splice.

use std::cell::RefCell;
use std::ffi::{c_int, c_uint, c_void};

use libc::{iovec, msghdr, off_t, sockaddr, socklen_t};
use rstcp::ffi;

use crate::fds::{self, OURS};
use crate::real;
use crate::route::{self, errno, fail};

thread_local! {
    /// Scratch space for gathering vectors, reused by each thread.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on this thread's scratch buffer, or on a fresh one when that
/// is busy (a signal handler's call during a blocked one) or gone (calls
/// from destructors at thread exit).
fn with_scratch<T>(f: impl FnOnce(&mut Vec<u8>) -> T) -> T {
    let mut f = Some(f);
    let r = SCRATCH.try_with(|s| match s.try_borrow_mut() {
        Ok(mut buf) => Some((f.take().expect("unused"))(&mut buf)),
        Err(_) => None,
    });
    match (r, f) {
        (Ok(Some(v)), _) => v,
        (_, Some(f)) => f(&mut Vec::new()),
        (_, None) => unreachable!("the closure ran but gave nothing back"),
    }
}

fn ours(fd: c_int) -> bool {
    fds::kind(fd) == OURS
}

#[no_mangle]
pub unsafe extern "C" fn read(fd: c_int, buf: *mut c_void, n: usize) -> isize {
    crate::guard("read", || {
        if ours(fd) {
            return unsafe { ffi::rs_recv(fd, buf, n, 0) };
        }
        unsafe { real::read(fd, buf, n) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn __read_chk(fd: c_int, buf: *mut c_void, n: usize, size: usize) -> isize {
    crate::guard("__read_chk", || {
        if n > size {
            // What glibc's fortified read does on a buffer overflow.
            std::process::abort();
        }
        unsafe { read(fd, buf, n) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn write(fd: c_int, buf: *const c_void, n: usize) -> isize {
    crate::guard("write", || {
        if ours(fd) {
            return unsafe { ffi::rs_send(fd, buf, n, 0) };
        }
        unsafe { real::write(fd, buf, n) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn recv(fd: c_int, buf: *mut c_void, n: usize, flags: c_int) -> isize {
    crate::guard("recv", || {
        if ours(fd) {
            return unsafe { ffi::rs_recv(fd, buf, n, flags) };
        }
        unsafe { real::recv(fd, buf, n, flags) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn __recv_chk(
    fd: c_int,
    buf: *mut c_void,
    n: usize,
    size: usize,
    flags: c_int,
) -> isize {
    crate::guard("__recv_chk", || {
        if n > size {
            std::process::abort();
        }
        unsafe { recv(fd, buf, n, flags) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn send(fd: c_int, buf: *const c_void, n: usize, flags: c_int) -> isize {
    crate::guard("send", || {
        if ours(fd) {
            return unsafe { ffi::rs_send(fd, buf, n, flags) };
        }
        unsafe { real::send(fd, buf, n, flags) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn recvfrom(
    fd: c_int,
    buf: *mut c_void,
    n: usize,
    flags: c_int,
    addr: *mut sockaddr,
    len: *mut socklen_t,
) -> isize {
    crate::guard("recvfrom", || {
        if ours(fd) {
            let r = unsafe { ffi::rs_recv(fd, buf, n, flags) };
            // A stream socket reports no source address, as Linux's TCP does.
            if r >= 0 && !addr.is_null() && !len.is_null() {
                unsafe { *len = 0 };
            }
            return r;
        }
        unsafe { real::recvfrom(fd, buf, n, flags, addr, len) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn __recvfrom_chk(
    fd: c_int,
    buf: *mut c_void,
    n: usize,
    size: usize,
    flags: c_int,
    addr: *mut sockaddr,
    len: *mut socklen_t,
) -> isize {
    crate::guard("__recvfrom_chk", || {
        if n > size {
            std::process::abort();
        }
        unsafe { recvfrom(fd, buf, n, flags, addr, len) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn sendto(
    fd: c_int,
    buf: *const c_void,
    n: usize,
    flags: c_int,
    addr: *const sockaddr,
    len: socklen_t,
) -> isize {
    crate::guard("sendto", || {
        if ours(fd) {
            // A connected stream socket ignores the destination, as Linux's TCP does.
            return unsafe { ffi::rs_send(fd, buf, n, flags) };
        }
        unsafe { real::sendto(fd, buf, n, flags, addr, len) }
    })
}

/// The iovec array as slices (a NULL array with a zero count is empty).
unsafe fn iovs<'a>(iov: *const iovec, n: usize) -> &'a [iovec] {
    if iov.is_null() || n == 0 {
        &[]
    } else {
        unsafe { std::slice::from_raw_parts(iov, n) }
    }
}

/// Receives into a vector: one receive into scratch space, then scattered.
unsafe fn recv_vec(fd: c_int, iov: &[iovec], flags: c_int) -> isize {
    let total: usize = iov.iter().map(|v| v.iov_len).sum();
    with_scratch(|s| {
        s.resize(total.min(1 << 20), 0);
        let r = unsafe { ffi::rs_recv(fd, s.as_mut_ptr() as *mut c_void, s.len(), flags) };
        if r > 0 {
            let mut at = 0usize;
            for v in iov {
                let take = v.iov_len.min(r as usize - at);
                unsafe {
                    std::ptr::copy_nonoverlapping(s.as_ptr().add(at), v.iov_base as *mut u8, take)
                };
                at += take;
                if at == r as usize {
                    break;
                }
            }
        }
        r
    })
}

/// Sends a vector: gathered into scratch space, then one send.
unsafe fn send_vec(fd: c_int, iov: &[iovec], flags: c_int) -> isize {
    with_scratch(|s| {
        s.clear();
        for v in iov {
            if v.iov_len > 0 {
                s.extend_from_slice(unsafe {
                    std::slice::from_raw_parts(v.iov_base as *const u8, v.iov_len)
                });
            }
        }
        unsafe { ffi::rs_send(fd, s.as_ptr() as *const c_void, s.len(), flags) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn readv(fd: c_int, iov: *const iovec, n: c_int) -> isize {
    crate::guard("readv", || {
        if ours(fd) {
            if n < 0 {
                return fail(libc::EINVAL);
            }
            return unsafe { recv_vec(fd, iovs(iov, n as usize), 0) };
        }
        unsafe { real::readv(fd, iov, n) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn writev(fd: c_int, iov: *const iovec, n: c_int) -> isize {
    crate::guard("writev", || {
        if ours(fd) {
            if n < 0 {
                return fail(libc::EINVAL);
            }
            return unsafe { send_vec(fd, iovs(iov, n as usize), 0) };
        }
        unsafe { real::writev(fd, iov, n) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn recvmsg(fd: c_int, msg: *mut msghdr, flags: c_int) -> isize {
    crate::guard("recvmsg", || {
        if !ours(fd) {
            let r = unsafe { real::recvmsg(fd, msg, flags) };
            if r >= 0 {
                super::fdops::fresh_rights(msg);
            }
            return r;
        }
        if msg.is_null() {
            return fail(libc::EFAULT);
        }
        let m = unsafe { &mut *msg };
        let r = unsafe { recv_vec(fd, iovs(m.msg_iov, m.msg_iovlen), flags) };
        if r >= 0 {
            m.msg_namelen = 0;
            m.msg_controllen = 0;
            m.msg_flags = 0;
        }
        r
    })
}

#[no_mangle]
pub unsafe extern "C" fn sendmsg(fd: c_int, msg: *const msghdr, flags: c_int) -> isize {
    crate::guard("sendmsg", || {
        if !ours(fd) {
            return unsafe { real::sendmsg(fd, msg, flags) };
        }
        if msg.is_null() {
            return fail(libc::EFAULT);
        }
        let m = unsafe { &*msg };
        if m.msg_controllen > 0 {
            route::warn_unsupported("ancillary data (sendmsg control messages)");
        }
        unsafe { send_vec(fd, iovs(m.msg_iov, m.msg_iovlen), flags) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn recvmmsg(
    fd: c_int,
    v: *mut libc::mmsghdr,
    n: c_uint,
    flags: c_int,
    t: *mut libc::timespec,
) -> c_int {
    crate::guard("recvmmsg", || {
        if !ours(fd) {
            return unsafe { real::recvmmsg(fd, v, n, flags, t) };
        }
        if !t.is_null() {
            route::warn_unsupported("recvmmsg's timeout");
        }
        batch(v, n, |m, i| {
            // After the first message, never block (as MSG_WAITFORONE asks and
            // a stream socket's later messages would anyway).
            let f = if i > 0 {
                flags | libc::MSG_DONTWAIT
            } else {
                flags
            };
            unsafe { recvmsg(fd, m, f & !libc::MSG_WAITFORONE) }
        })
    })
}

#[no_mangle]
pub unsafe extern "C" fn sendmmsg(
    fd: c_int,
    v: *mut libc::mmsghdr,
    n: c_uint,
    flags: c_int,
) -> c_int {
    crate::guard("sendmmsg", || {
        if !ours(fd) {
            return unsafe { real::sendmmsg(fd, v, n, flags) };
        }
        batch(v, n, |m, _| unsafe { sendmsg(fd, m, flags) })
    })
}

/// Runs `one` over the messages until one fails; the count done, or the
/// first failure if none was.
fn batch(
    v: *mut libc::mmsghdr,
    n: c_uint,
    mut one: impl FnMut(*mut msghdr, usize) -> isize,
) -> c_int {
    if v.is_null() {
        return fail(libc::EFAULT);
    }
    let mut done = 0usize;
    while done < n as usize {
        let m = unsafe { &mut *v.add(done) };
        let r = one(&mut m.msg_hdr, done);
        if r < 0 {
            return if done > 0 { done as c_int } else { -1 };
        }
        m.msg_len = r as c_uint;
        done += 1;
    }
    done as c_int
}

/// sendfile to one of our sockets: read from the file, send to the stack.
/// Without an offset pointer the file position ends just past what was
/// sent: bytes read but not taken by the socket are put back.
unsafe fn sendfile_ours(out: c_int, inp: c_int, off: *mut off_t, n: usize) -> isize {
    let mut buf = vec![0u8; n.min(256 << 10)];
    let mut sent = 0usize;
    while sent < n {
        let want = buf.len().min(n - sent);
        let got = if off.is_null() {
            unsafe { real::read(inp, buf.as_mut_ptr() as *mut c_void, want) }
        } else {
            unsafe { libc::pread(inp, buf.as_mut_ptr() as *mut c_void, want, *off) }
        };
        if got <= 0 {
            if got < 0 && sent == 0 {
                return -1;
            }
            break;
        }
        let got = got as usize;
        let w = unsafe { ffi::rs_send(out, buf.as_ptr() as *const c_void, got, 0) };
        let e = errno();
        let taken = w.max(0) as usize;
        if off.is_null() {
            if taken < got {
                unsafe { libc::lseek(inp, taken as off_t - got as off_t, libc::SEEK_CUR) };
            }
        } else {
            unsafe { *off += taken as off_t };
        }
        sent += taken;
        if w < 0 {
            if sent == 0 {
                return fail(e);
            }
            break;
        }
        if taken < got {
            break;
        }
    }
    sent as isize
}

#[no_mangle]
pub unsafe extern "C" fn sendfile(out: c_int, inp: c_int, off: *mut off_t, n: usize) -> isize {
    crate::guard("sendfile", || {
        if ours(out) {
            return unsafe { sendfile_ours(out, inp, off, n) };
        }
        if ours(inp) {
            return fail(libc::EINVAL);
        }
        unsafe { real::sendfile(out, inp, off, n) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn sendfile64(out: c_int, inp: c_int, off: *mut off_t, n: usize) -> isize {
    crate::guard("sendfile64", || {
        if ours(out) {
            return unsafe { sendfile_ours(out, inp, off, n) };
        }
        if ours(inp) {
            return fail(libc::EINVAL);
        }
        unsafe { real::sendfile64(out, inp, off, n) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn splice(
    a: c_int,
    aoff: *mut i64,
    b: c_int,
    boff: *mut i64,
    n: usize,
    flags: c_uint,
) -> isize {
    crate::guard("splice", || {
        if ours(a) || ours(b) {
            // Programs that splice fall back to read/write on EINVAL.
            route::warn_unsupported("splice");
            return fail(libc::EINVAL);
        }
        let r = unsafe { real::splice(a, aoff, b, boff, n, flags) };
        let _ = errno();
        r
    })
}
