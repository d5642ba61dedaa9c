//! The calls the application makes on a connection (RFC 9293, 3.10: SEND,
//! RECEIVE, CLOSE, ABORT) and what it can see of it without blocking.

use super::recv_buffer::RecvReader;
use super::send_buffer::SendWriter;
use super::state::State;
use super::tcb::Tcb;
use crate::error::{Error, Result};
use crate::time::Instant;
use crate::wire::TcpFlags;

/// A connection's two rings as the application holds them.
#[derive(Clone, Debug)]
pub struct Rings {
    /// Reads in-order bytes.
    pub reader: RecvReader,
    /// Appends bytes to send.
    pub writer: SendWriter,
}

impl Rings {
    /// True if both are the same connection's.
    pub fn same(&self, other: &Rings) -> bool {
        self.reader.same(&other.reader)
    }
}

impl Tcb {
    /// Queues `data` for sending; returns how much was taken.
    pub fn send(&mut self, data: &[u8]) -> Result<usize> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        if self.reset {
            return Err(Error::BrokenPipe);
        }
        match self.state {
            State::SynSent | State::SynReceived => return Err(Error::WouldBlock),
            State::Established | State::CloseWait if !self.fin_queued => {}
            _ => return Err(Error::BrokenPipe),
        }
        if data.is_empty() {
            return Ok(0);
        }
        let n = self.send_buf.push(data);
        if n == 0 {
            return Err(Error::WouldBlock);
        }
        Ok(n)
    }

    /// Copies received bytes into `out` (keeping them if `peek`).
    /// Ok(0) means the peer closed its side and everything was read.
    pub fn recv(&mut self, out: &mut [u8], peek: bool) -> Result<usize> {
        if !self.recv_buf.is_empty() && !out.is_empty() {
            let n = self.recv_buf.read(out, peek);
            if !peek {
                self.window_update();
                if self.recv_buf.is_empty() {
                    self.release_storage();
                }
            }
            return Ok(n);
        }
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        if self.fin_received || self.read_shut || self.reset {
            return Ok(0);
        }
        match self.state {
            State::Closed => Err(Error::NotConnected),
            _ if out.is_empty() => Ok(0),
            _ => Err(Error::WouldBlock),
        }
    }

    /// After a read: tell the peer when the window opened by a useful amount
    /// (receiver-side silly window avoidance, RFC 1122 4.2.3.3). The receive
    /// ring keeps the count: a read without the stack's lock
    /// ([`RecvReader::read`]) asks it too, and then has the stack call this.
    pub fn window_update(&mut self) {
        if !self.state.can_receive() || self.fin_received {
            self.recv_buf.quiet();
            return;
        }
        if self.recv_buf.window_opened() {
            self.ack_now = true;
        }
    }

    /// The application's way to read and write without the stack's lock.
    pub fn rings(&self) -> Rings {
        Rings {
            reader: self.recv_buf.reader(),
            writer: self.send_buf.writer(),
        }
    }

    /// shutdown(SHUT_WR) / the write half of close(): FIN follows the queued data.
    pub fn shutdown_write(&mut self) -> Result<()> {
        match self.state {
            State::SynSent => {
                self.state = State::Closed;
                self.changed = true;
            }
            State::SynReceived | State::Established => {
                self.fin_queued = true;
                self.send_buf.shut();
                self.state = State::FinWait1;
                self.changed = true;
            }
            State::CloseWait => {
                self.fin_queued = true;
                self.send_buf.shut();
                self.state = State::LastAck;
                self.changed = true;
            }
            State::Closed | State::Listen => return Err(Error::NotConnected),
            _ => {}
        }
        Ok(())
    }

    /// shutdown(SHUT_RD): later reads return 0; data that arrives is discarded.
    pub fn shutdown_read(&mut self) {
        self.read_shut = true;
        self.changed = true;
    }

    /// close(): the application lets go. Unread data makes this an abort
    /// (RFC 2525 2.17, as Linux does); otherwise FIN follows the queued data.
    /// From now on the connection is an orphan: in FIN-WAIT-2 it waits for
    /// the peer's FIN only `fin_timeout` (also when shutdown(SHUT_WR) took
    /// it there before this close).
    pub fn close(&mut self, now: Instant) {
        self.orphaned = true;
        if !self.recv_buf.is_empty() && self.state.is_synchronized() {
            self.abort();
            return;
        }
        // In SYN-RECEIVED too, CLOSE sends FIN (RFC 9293, 3.10.4).
        let _ = self.shutdown_write();
        if self.state == State::FinWait2 && self.fin_wait2_deadline.is_none() {
            self.fin_wait2_deadline = Some(now + self.cfg.fin_timeout);
        }
    }

    /// Sends RST (if the peer knows of us) and goes to CLOSED at once.
    pub fn abort(&mut self) {
        if matches!(
            self.state,
            State::SynReceived
                | State::Established
                | State::FinWait1
                | State::FinWait2
                | State::CloseWait
        ) {
            self.pending_rst = Some((self.snd_max, self.rcv_nxt, TcpFlags::RST | TcpFlags::ACK));
        }
        self.enter_closed();
    }

    /// Takes the pending error (SO_ERROR).
    pub fn take_error(&mut self) -> Option<Error> {
        self.error.take()
    }

    /// The pending error, left in place.
    pub fn peek_error(&self) -> Option<Error> {
        self.error
    }

    /// True when the application can read without blocking (data, EOF or error).
    pub fn readable(&self) -> bool {
        !self.recv_buf.is_empty()
            || self.fin_received
            || self.read_shut
            || self.error.is_some()
            || self.reset
    }

    /// True when `send` would take at least one byte (or fail at once).
    pub fn writable(&self) -> bool {
        match self.state {
            State::Established | State::CloseWait if !self.fin_queued => self.send_buf.free() > 0,
            State::SynSent | State::SynReceived => false,
            _ => true,
        }
    }

    /// True when our sending side is shut (FIN queued, or the connection is gone).
    pub fn write_shut(&self) -> bool {
        self.fin_queued || self.reset || self.state == State::Closed
    }

    /// True when the peer will send nothing more.
    pub fn read_closed(&self) -> bool {
        self.fin_received || self.reset || self.read_shut
    }

    /// Bytes ready to read.
    pub fn recv_queue(&self) -> usize {
        self.recv_buf.len()
    }

    /// Bytes written by the application and not yet acknowledged.
    pub fn send_queue(&self) -> usize {
        self.send_buf.len()
    }

    /// Free room in the send buffer.
    pub fn send_space(&self) -> usize {
        self.send_buf.free()
    }
}
