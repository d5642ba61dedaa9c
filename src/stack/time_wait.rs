//! Connections in TIME-WAIT whose socket the application closed: kept as
//! a [`TimeWait`] of a few words under their 4-tuple, with their port held,
//! instead of a socket and a control block, until 2·MSL has passed.

use std::net::SocketAddrV4;

use super::socket_table::{FourTuple, SocketId};
use super::{ConnEvent, ConnEventKind, Stack};
use crate::tcp::{State, TimeWait, TimeWaitReply};
use crate::time::Instant;
use crate::wire::TcpSegment;

impl Stack {
    /// Replaces socket `id` (closed, in a quiet TIME-WAIT) by `tw`.
    pub(super) fn compact_time_wait(&mut self, id: SocketId, tw: TimeWait) {
        self.free(id);
        // Still counted among the connections in TIME-WAIT.
        self.time_wait += 1;
        let key = FourTuple::new(tw.local(), tw.remote());
        self.ports.hold_time_wait(key.local_port);
        self.time_wait_ends.push_back((tw.deadline(), key));
        self.sockets.time_waits.insert(key, tw);
    }

    /// A segment for a compact TIME-WAIT connection, if there is one for
    /// `key`; false if there is none, or if the segment is a new SYN that
    /// may open a new connection in its place (RFC 6191), which the
    /// caller then gives to the listener.
    pub(super) fn on_time_wait_segment(
        &mut self,
        now: Instant,
        key: FourTuple,
        seg: &TcpSegment,
    ) -> bool {
        let Some(tw) = self.sockets.time_waits.get_mut(&key) else {
            return false;
        };
        if tw.syn_reopens(seg) && self.sockets.listeners.contains_key(&key.local_port) {
            self.forget_time_wait(key);
            return false;
        }
        let before = tw.deadline();
        match tw.on_segment(now, seg) {
            TimeWaitReply::Nothing => {}
            TimeWaitReply::Ack => {
                let mut tw = *tw;
                self.queue_control(|buf| tw.emit_ack(now, buf));
                self.stats.tcp_out_segs += 1;
                self.sockets.time_waits.insert(key, tw);
            }
            TimeWaitReply::Closed => {
                self.forget_time_wait(key);
                return true;
            }
        }
        let after = self.sockets.time_waits.get(&key).map(TimeWait::deadline);
        if let Some(d) = after.filter(|&d| d != before) {
            self.time_wait_ends.push_back((d, key));
        }
        true
    }

    /// Forgets the compact TIME-WAIT connections whose 2·MSL has passed.
    pub(super) fn end_time_waits(&mut self, now: Instant) {
        while let Some(&(end, key)) = self.time_wait_ends.front() {
            if end > now {
                break;
            }
            self.time_wait_ends.pop_front();
            let due = self.sockets.time_waits.get(&key);
            // Otherwise a retransmitted FIN moved it later (a newer entry
            // is queued), or it is already gone.
            if due.is_some_and(|tw| tw.deadline() <= now) {
                self.forget_time_wait(key);
            }
        }
    }

    fn forget_time_wait(&mut self, key: FourTuple) {
        let Some(tw) = self.sockets.time_waits.remove(&key) else {
            return;
        };
        self.time_wait -= 1;
        self.ports.release_time_wait(key.local_port);
        if let Some(events) = self.events.as_mut() {
            let (local, remote) = (tw.local(), tw.remote());
            for kind in [
                ConnEventKind::State(Some(State::TimeWait), State::Closed),
                ConnEventKind::Freed,
            ] {
                events.push(ConnEvent {
                    local,
                    remote,
                    kind,
                });
            }
        }
    }

    /// The compact TIME-WAIT connections (our end, the peer's), for
    /// inspection: their sockets are gone, so `connections` lists them no
    /// longer.
    pub fn time_waits(&self) -> impl Iterator<Item = (SocketAddrV4, SocketAddrV4)> + '_ {
        self.sockets
            .time_waits
            .values()
            .map(|tw| (tw.local(), tw.remote()))
    }
}
