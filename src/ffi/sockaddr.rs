//! `struct sockaddr_in` ⇄ `SocketAddrV4`, with libc's checks.

use std::net::{Ipv4Addr, SocketAddrV4};

use crate::error::{Error, Result};

const SIN_LEN: usize = std::mem::size_of::<libc::sockaddr_in>();

/// Reads an address passed to bind/connect: EFAULT for NULL, EINVAL for a
/// short length, EAFNOSUPPORT for another family.
///
/// # Safety
/// `addr` must be NULL or point to at least `len` readable bytes.
pub unsafe fn read(addr: *const libc::sockaddr, len: libc::socklen_t) -> Result<SocketAddrV4> {
    if addr.is_null() {
        return Err(Error::Fault);
    }
    if (len as usize) < std::mem::size_of::<libc::sa_family_t>() {
        return Err(Error::Invalid);
    }
    // SAFETY: at least the family field is readable (checked above).
    let family = unsafe { std::ptr::read_unaligned(addr as *const libc::sa_family_t) };
    if family as i32 != libc::AF_INET {
        return Err(Error::AddressFamily);
    }
    if (len as usize) < SIN_LEN {
        return Err(Error::Invalid);
    }
    // SAFETY: len covers a whole sockaddr_in.
    let sin = unsafe { std::ptr::read_unaligned(addr as *const libc::sockaddr_in) };
    Ok(SocketAddrV4::new(
        Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)),
        u16::from_be(sin.sin_port),
    ))
}

/// Writes an address for accept/getsockname/getpeername the way the kernel
/// does: truncated to `*len`, and `*len` set to the full size. NULL `addr`
/// means the caller does not want it.
///
/// # Safety
/// `addr` must be NULL or writable for `*len` bytes; `len` NULL or valid.
pub unsafe fn write(
    value: SocketAddrV4,
    addr: *mut libc::sockaddr,
    len: *mut libc::socklen_t,
) -> Result<()> {
    if addr.is_null() {
        return Ok(());
    }
    if len.is_null() {
        return Err(Error::Fault);
    }
    // SAFETY: len is non-null and points to the caller's socklen_t.
    let room = unsafe { *len } as i32;
    if room < 0 {
        return Err(Error::Invalid);
    }
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: value.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*value.ip()).to_be(),
        },
        sin_zero: [0; 8],
    };
    let n = (room as usize).min(SIN_LEN);
    // SAFETY: copying n <= room bytes into the caller's buffer.
    unsafe {
        std::ptr::copy_nonoverlapping(
            &sin as *const libc::sockaddr_in as *const u8,
            addr as *mut u8,
            n,
        );
        *len = SIN_LEN as libc::socklen_t;
    }
    Ok(())
}
