//! `struct sockaddr_in` ⇄ `SocketAddrV4`, with libc's checks in the order
//! Linux makes them (the differential test holds us to it).

use std::net::{Ipv4Addr, SocketAddrV4};

use crate::error::{Error, Result};

const SIN_LEN: usize = std::mem::size_of::<libc::sockaddr_in>();
/// The longest address a call takes (`struct sockaddr_storage`).
const STORAGE_LEN: usize = std::mem::size_of::<libc::sockaddr_storage>();

/// The first bytes of an address argument, copied as Linux's
/// move_addr_to_kernel does: EINVAL past sockaddr_storage's size, EFAULT
/// for NULL unless the length is 0 (then nothing is read).
///
/// # Safety
/// `addr` must be NULL or point to at least `len` readable bytes.
unsafe fn copy_in(addr: *const libc::sockaddr, len: libc::socklen_t) -> Result<([u8; 16], usize)> {
    let len = len as usize;
    if len > STORAGE_LEN {
        return Err(Error::Invalid);
    }
    let mut b = [0u8; 16];
    let n = len.min(b.len());
    if n > 0 {
        if addr.is_null() {
            return Err(Error::Fault);
        }
        // SAFETY: n <= len readable bytes, per the contract.
        unsafe { std::ptr::copy_nonoverlapping(addr as *const u8, b.as_mut_ptr(), n) };
    }
    Ok((b, len))
}

fn family(b: &[u8; 16]) -> i32 {
    i32::from(u16::from_ne_bytes([b[0], b[1]]))
}

fn inet(b: &[u8; 16]) -> SocketAddrV4 {
    SocketAddrV4::new(
        Ipv4Addr::new(b[4], b[5], b[6], b[7]),
        u16::from_be_bytes([b[2], b[3]]),
    )
}

/// Reads a bind() address: EINVAL below sockaddr_in's size, then
/// EAFNOSUPPORT for another family — except AF_UNSPEC with INADDR_ANY,
/// which Linux takes as AF_INET for old programs.
///
/// # Safety
/// `addr` must be NULL or point to at least `len` readable bytes.
pub unsafe fn read(addr: *const libc::sockaddr, len: libc::socklen_t) -> Result<SocketAddrV4> {
    // SAFETY: the caller's contract.
    let (b, len) = unsafe { copy_in(addr, len) }?;
    if len < SIN_LEN {
        return Err(Error::Invalid);
    }
    let a = inet(&b);
    match family(&b) {
        libc::AF_INET => Ok(a),
        libc::AF_UNSPEC if a.ip().is_unspecified() => Ok(a),
        _ => Err(Error::AddressFamily),
    }
}

/// A connect() address as far as Linux reads it before the socket's state
/// decides: AF_UNSPEC asks for a disconnect; anything else is checked in
/// full only once the state allows a connect (a connected socket answers
/// EISCONN whatever the address).
#[derive(Debug)]
pub enum ConnectTo {
    /// AF_UNSPEC: drop the association.
    Unspec,
    /// An address, or why it is not a usable one.
    Inet(Result<SocketAddrV4>),
}

/// Reads a connect() address: EINVAL past sockaddr_storage or below the
/// family field, EFAULT for NULL.
///
/// # Safety
/// `addr` must be NULL or point to at least `len` readable bytes.
pub unsafe fn read_connect(addr: *const libc::sockaddr, len: libc::socklen_t) -> Result<ConnectTo> {
    // SAFETY: the caller's contract.
    let (b, len) = unsafe { copy_in(addr, len) }?;
    if len < std::mem::size_of::<libc::sa_family_t>() {
        return Err(Error::Invalid);
    }
    Ok(match family(&b) {
        libc::AF_UNSPEC => ConnectTo::Unspec,
        _ if len < SIN_LEN => ConnectTo::Inet(Err(Error::Invalid)),
        libc::AF_INET => ConnectTo::Inet(Ok(inet(&b))),
        _ => ConnectTo::Inet(Err(Error::AddressFamily)),
    })
}

/// Writes an address for accept: nothing when `addr` is NULL (the caller
/// does not want it); otherwise as [`write_always`].
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
    // SAFETY: the caller's contract.
    unsafe { write_always(value, addr, len) }
}

/// Writes an address the way the kernel's move_addr_to_user does (for
/// getsockname/getpeername): EFAULT for a NULL length, EINVAL for a
/// negative one, the address truncated to `*len` (NULL is fine when that
/// is 0), and `*len` set to the full size.
///
/// # Safety
/// `addr` must be NULL or writable for `*len` bytes; `len` NULL or valid.
pub unsafe fn write_always(
    value: SocketAddrV4,
    addr: *mut libc::sockaddr,
    len: *mut libc::socklen_t,
) -> Result<()> {
    if len.is_null() {
        return Err(Error::Fault);
    }
    // SAFETY: len is non-null and points to the caller's socklen_t.
    let room = unsafe { *len } as i32;
    if room < 0 {
        return Err(Error::Invalid);
    }
    let n = (room as usize).min(SIN_LEN);
    if n > 0 {
        if addr.is_null() {
            return Err(Error::Fault);
        }
        let sin = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: value.port().to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(*value.ip()).to_be(),
            },
            sin_zero: [0; 8],
        };
        // SAFETY: copying n <= room bytes into the caller's buffer.
        unsafe {
            std::ptr::copy_nonoverlapping(
                &sin as *const libc::sockaddr_in as *const u8,
                addr as *mut u8,
                n,
            )
        };
    }
    // SAFETY: len is non-null and valid.
    unsafe { *len = SIN_LEN as libc::socklen_t };
    Ok(())
}
