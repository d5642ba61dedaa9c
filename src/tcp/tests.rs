//! Scripted tests of the TCP state machine.
