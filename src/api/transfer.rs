//! send() and recv(): bytes through a connection's rings, without the
//! stack's lock when they can go that way, through the stack otherwise
//! (errors, end of stream, waits, what did not fit).

use super::fd_table::FdEntry;
use super::{MsgFlags, Sockets};
use crate::error::{Error, Result};
use crate::tcp::Rings;

impl Sockets {
    /// send(): blocking sends queue everything (or fail / time out with a
    /// partial count); non-blocking ones what fits, or EAGAIN. On an
    /// established connection what fits goes into the send ring without
    /// the stack's lock (see `write_ready` below); the stack is asked
    /// for errors, waits and what did not fit.
    pub fn send(&self, fd: i32, data: &[u8], flags: MsgFlags) -> Result<usize> {
        let e = self.fds.get(fd)?;
        let nonblocking = flags.dont_wait || e.is_nonblocking();
        let mut sent = self.write_ready(&e, data);
        if sent > 0 && (sent == data.len() || nonblocking) {
            return Ok(sent);
        }
        let timeout = FdEntry::timeout(&e.send_timeout);
        let r = self.blocking(&e, nonblocking, timeout, libc::POLLOUT, |stack, now| {
            e.take_rings(stack);
            match stack.send(now, e.id, &data[sent..]) {
                Ok(n) => {
                    sent += n;
                    if sent < data.len() && !nonblocking {
                        Err(Error::WouldBlock)
                    } else {
                        Ok(sent)
                    }
                }
                Err(Error::WouldBlock) if sent > 0 && nonblocking => Ok(sent),
                Err(err) => Err(err),
            }
        });
        match r {
            Err(_) if sent > 0 => Ok(sent),
            r => r,
        }
    }

    /// recv(): at least one byte, 0 at end of stream. Bytes already in
    /// order are read without the stack's lock (see `read_ready` below);
    /// the stack is asked only when none are, or to tell the peer of the
    /// window the read opened.
    pub fn recv(&self, fd: i32, buf: &mut [u8], flags: MsgFlags) -> Result<usize> {
        let e = self.fds.get(fd)?;
        let nonblocking = flags.dont_wait || e.is_nonblocking();
        let mut got = self.read_ready(&e, buf, flags.peek);
        if got > 0 && (!flags.wait_all || flags.peek || got == buf.len() || nonblocking) {
            return Ok(got);
        }
        let timeout = FdEntry::timeout(&e.recv_timeout);
        let readable = libc::POLLIN | libc::POLLRDHUP;
        let r = self.blocking(&e, nonblocking, timeout, readable, |stack, now| {
            e.take_rings(stack);
            match stack.recv(now, e.id, &mut buf[got..], flags.peek) {
                Ok(0) => Ok(got),
                Ok(n) if flags.wait_all && !flags.peek && got + n < buf.len() && !nonblocking => {
                    got += n;
                    Err(Error::WouldBlock)
                }
                Ok(n) => Ok(got + n),
                Err(Error::WouldBlock) if got > 0 && nonblocking => Ok(got),
                Err(err) => Err(err),
            }
        });
        match r {
            Err(_) if got > 0 => Ok(got),
            r => r,
        }
    }

    /// Reads what the connection's receive ring holds in order, without
    /// the stack's lock; 0 if it holds nothing (or the descriptor has not
    /// met the connection's rings yet). If the read opened the window by
    /// enough, the stack sends the update.
    fn read_ready(&self, e: &FdEntry, buf: &mut [u8], peek: bool) -> usize {
        let Some(reader) = self.live_ring(e, |r| r.reader.clone()) else {
            return 0;
        };
        let Some(read) = reader.read(buf, peek) else {
            return 0;
        };
        if read.update {
            self.rt(e.shard).nudge(e.id);
        }
        read.bytes
    }

    /// Appends what fits to the connection's send ring without the stack's
    /// lock; 0 if nothing can go that way (not established, shut for
    /// writing, full). The stack is nudged to send it unless an ACK already
    /// due will.
    fn write_ready(&self, e: &FdEntry, data: &[u8]) -> usize {
        let Some(writer) = self.live_ring(e, |r| r.writer.clone()) else {
            return 0;
        };
        let Some(written) = writer.write(data) else {
            return 0;
        };
        if written.kick {
            self.rt(e.shard).nudge(e.id);
        }
        written.bytes
    }

    /// One of the descriptor's rings (`pick`), unless its stack failed:
    /// then every call goes through the stack and fails with EIO (bytes
    /// appended to a ring would never leave).
    fn live_ring<T>(&self, e: &FdEntry, pick: impl FnOnce(&Rings) -> T) -> Option<T> {
        if self.rt(e.shard).is_dead() {
            return None;
        }
        e.rings.lock().as_ref().map(pick)
    }
}
