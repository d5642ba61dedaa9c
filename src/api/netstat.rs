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
    /// Every socket of this stack, ordered by descriptor (those without one
    /// last).
    pub fn netstat(&self) -> Vec<NetstatEntry> {
        let mut fd_of = HashMap::new();
        for (fd, id) in self.fds.entries() {
            let best = fd_of.entry(id).or_insert(fd);
            *best = (*best).min(fd);
        }
        let mut rows = Vec::new();
        {
            let inner = self.lock();
            inner.stack.socket_rows(self.shared.now(), &mut rows);
        }
        let mut out: Vec<NetstatEntry> = rows
            .into_iter()
            .map(|row| NetstatEntry {
                fd: fd_of.get(&row.id).copied(),
                row,
            })
            .collect();
        out.sort_by_key(|e| (e.fd.is_none(), e.fd, e.row.id.index()));
        out
    }

    /// The stack's counters by name (`netstat -s`).
    pub fn counters(&self) -> Vec<(&'static str, u64)> {
        self.lock().stack.counters().to_vec()
    }
}
