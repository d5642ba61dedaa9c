//! rstcp: a TCP/IPv4 stack in the application's process.
//!
//! Layers, top to bottom: [`ffi`] (the `rs_*` C ABI), [`api`] (safe sockets),
//! [`runtime`] (the I/O thread), [`stack`] (sans-IO IPv4 and the socket table),
//! [`tcp`] (sans-IO TCP connections), [`wire`] (packet formats) and [`link`]
//! (TUN device, in-memory pair, fault injection, pcap). [`packetdrill`]
//! exports packetdrill's shared-object interface over the same layers.

#![warn(missing_docs)]

pub mod api;
pub mod error;
pub mod ffi;
pub mod link;
pub mod log;
pub mod packetdrill;
pub mod runtime;
pub mod stack;
pub mod sys;
pub mod tcp;
pub mod time;
pub mod wire;

pub use error::{Error, Result};
