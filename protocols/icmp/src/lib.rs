//! netlab-icmp: ICMP echo ("ping") as a sans-IO library: wire formats, a many-target pinger, and a
//! [`netlab_core::Service`] that runs it on the reactor.
//!
//! **What it is.** [`wire`]: the RFC 1071 checksum, echo request/reply for ICMPv4 and ICMPv6 (a
//! checked view over untrusted bytes and an emit-able representation), and the ICMP error messages
//! (destination unreachable, time exceeded, packet too big, parameter problem) parsed down to the
//! echo request they quote. [`Pinger`]: one run to any number of targets: send schedule, per-probe
//! timeouts, a deadline, duplicate and damage detection, RTT statistics as iputils computes them,
//! and [`Event`]s for a front-end to print. [`PingService`]: the pinger plus its ICMP sockets.
//!
//! **What it never does.** Open a socket, read the clock or draw randomness: `now` is passed in, and
//! the identifier and payload cookie come from the caller's seed. It never trusts a reply by its
//! identifier alone (a datagram ping socket rewrites it, and a raw socket sees every pinger's
//! replies): a reply is ours only if its source, sequence number and payload cookie all match.
//!
//! **The life of one run.** `PingService` asks for one ICMP socket per address family (a datagram
//! ping socket first, a raw one if that is refused) → when every socket is answered, the pinger
//! starts: at each target's send time a probe becomes an `Output::SendTo` and a timeout in a queue
//! ordered by send time → replies and errors arrive as `Input::Datagram`, are matched to a probe and
//! become events → the run ends when every target has its count (or at the deadline, or on
//! shutdown), and the front-end prints the statistics.

pub mod payload;
pub mod pinger;
mod service;
pub mod stats;
mod types;
pub mod wire;

pub use pinger::{Claim, Damage, Event, PingConfig, Pinger, Target, Transmit};
pub use service::{PingService, SocketFailure};
pub use stats::{RttSummary, Stats};
pub use wire::{Echo, EchoPacket, ErrorKind, IcmpError, WireError, checksum};
