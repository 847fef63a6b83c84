//! The pinger's settings, and what it hands back: events, transmits, claims.

use std::net::IpAddr;
use std::time::Duration;

use crate::wire::ErrorKind;

/// Settings of one run.
#[derive(Clone, Debug)]
pub struct PingConfig {
    /// Probes per target; `None` pings until the deadline or until stopped.
    pub count: Option<u64>,
    /// Time between two probes to the same target (iputils `-i`).
    pub interval: Duration,
    /// Offset between the first probes of consecutive targets, so that many targets do not all
    /// send in the same instant.
    pub spacing: Duration,
    /// How long a probe waits for its reply before it counts as lost (iputils `-W`).
    pub timeout: Duration,
    /// The whole run ends after this long (iputils `-w`); with a count, it then ends as soon as
    /// every target has `count` replies.
    pub deadline: Option<Duration>,
    /// Echo payload bytes (iputils `-s`).
    pub payload_len: usize,
    /// Identifier put in requests. A datagram ping socket replaces it; a raw socket keeps it.
    pub ident: u16,
    /// Random value that marks our probes' payloads (drawn by the caller, never here).
    pub cookie: u64,
}

/// Why a reply that matched a probe was not accepted.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Damage {
    /// The ICMPv4 checksum is wrong.
    BadChecksum,
    /// The payload differs from what we sent, first at `offset`.
    WrongData { offset: usize, expected: u8, got: u8 },
    /// The payload is shorter or longer than what we sent.
    WrongLength { expected: usize, got: usize },
}

/// What happened, for a front-end to print.
#[derive(Clone, PartialEq, Debug)]
pub enum Event {
    /// A good reply (`dup`: the probe was already answered).
    Reply { target: usize, seq: u16, bytes: usize, ttl: Option<u8>, rtt: Duration, dup: bool },
    /// A reply that matched a probe but was damaged.
    Damaged { target: usize, seq: u16, bytes: usize, damage: Damage },
    /// An ICMP error about one of our probes, sent by `from`.
    Error { target: usize, seq: u16, from: IpAddr, kind: ErrorKind },
    /// A probe's timeout passed without a reply.
    Timeout { target: usize, seq: u16 },
    /// The socket refused to send a probe (e.g. EPERM from a firewall).
    SendFailed { target: usize, seq: u16, error: String },
}

/// An echo request to send.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Transmit {
    /// Which target.
    pub target: usize,
    /// Its address.
    pub to: IpAddr,
    /// The ICMP message.
    pub data: Vec<u8>,
}

/// Is a received message ours?
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Claim {
    /// It answered (or reported on) one of our probes; events say what it meant.
    Ours,
    /// Someone else's traffic, our own request seen on loopback, or garbage.
    NotOurs,
}
