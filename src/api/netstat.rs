//! The process's sockets as `ss -tn` shows the kernel's, each with its
//! descriptor, and the stack's counters: what `rs_netstat`, the stat
//! endpoint (rstcp-stat) and Python read.

use std::collections::HashMap;

use super::Sockets;
use crate::stack::netstat::SocketRow;

/// One socket and the descriptor that refers to it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NetstatEntry {
    /// The lowest descriptor referring to the socket; None for sockets
    /// no descriptor reaches (waiting in an accept queue, or closed by the
    /// application and finishing in the background).
    pub fd: Option<i32>,
    /// The socket.
    pub row: SocketRow,
}

impl Sockets {
    /// Every socket of every shard, ordered by descriptor (those without
    /// one last; a listener's copies in other shards under its descriptor).
    pub fn netstat(&self) -> Vec<NetstatEntry> {
        let mut fd_of = HashMap::new();
        for (fd, e) in self.fds.entries() {
            for place in e.places() {
                let best = fd_of.entry(place).or_insert(fd);
                *best = (*best).min(fd);
            }
        }
        let mut out = Vec::new();
        let mut rows = Vec::new();
        for shard in 0..self.shard_count() {
            rows.clear();
            let shared = self.rt(shard);
            shared.lock().stack.socket_rows(shared.now(), &mut rows);
            out.extend(rows.drain(..).map(|row| NetstatEntry {
                fd: row.id.and_then(|id| fd_of.get(&(shard, id)).copied()),
                row,
            }));
        }
        out.sort_by_key(|e| (e.fd.is_none(), e.fd, e.row.id.map(|id| id.index())));
        out
    }

    /// The stacks' counters by name (`netstat -s`), summed over the shards.
    pub fn counters(&self) -> Vec<(&'static str, u64)> {
        let mut sum: Vec<(&'static str, u64)> = Vec::new();
        for counters in self.with_stacks(|_, st| st.counters()) {
            if sum.is_empty() {
                sum = counters.to_vec();
            } else {
                for (total, (_, v)) in sum.iter_mut().zip(counters.iter()) {
                    total.1 += v;
                }
            }
        }
        sum
    }
}
