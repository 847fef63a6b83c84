//! `PingService`: a [`Pinger`] plus its ICMP sockets, as a [`Service`] the reactor runs.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Instant;

use netlab_core::{Bytes, Input, OpenError, Output, Service, SockId, SockKind};

use crate::pinger::{Claim, Event, Pinger};

/// errno values meaning "not permitted" (Linux): EPERM and EACCES.
const EPERM: i32 = 1;
const EACCES: i32 = 13;

/// Neither a datagram ping socket nor a raw socket could be opened for a family.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SocketFailure {
    /// ICMPv6 rather than ICMPv4.
    pub v6: bool,
    /// The raw socket's error (the datagram socket's came first and was not fatal).
    pub error: OpenError,
}

impl SocketFailure {
    /// True when the failure is a missing permission (the remedy is root, CAP_NET_RAW or
    /// `net.ipv4.ping_group_range`), rather than something else (no IPv6, out of descriptors).
    pub fn not_permitted(&self) -> bool {
        matches!(self.error.errno, Some(EPERM) | Some(EACCES))
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum SockState {
    /// No target of this family.
    Unneeded,
    /// An `Open` is out (a raw socket if `raw`).
    Opening { raw: bool },
    /// Open.
    Open { sock: SockId, raw: bool },
    /// Gone (failed or closed).
    Gone,
}

/// One ping run on the reactor. See the crate docs for its life.
pub struct PingService {
    pinger: Pinger,
    /// Sockets for ICMPv4 and ICMPv6.
    socks: [SockState; 2],
    out: VecDeque<Output>,
    /// TTL / hop limit asked for the sockets.
    ttl: Option<u8>,
    /// Added to every `Open` tag, so a composite service can tell our answers from its own.
    tag_base: u64,
    failure: Option<SocketFailure>,
    /// Received ICMP messages that were not ours (other pingers' traffic, our own requests).
    foreign: u64,
}

impl PingService {
    /// A service for `pinger`, opening sockets with TTL `ttl` and tags `tag_base + 0..4`.
    pub fn new(pinger: Pinger, ttl: Option<u8>, tag_base: u64) -> Self {
        let mut svc = PingService {
            pinger,
            socks: [SockState::Unneeded; 2],
            out: VecDeque::new(),
            ttl,
            tag_base,
            failure: None,
            foreign: 0,
        };
        for v6 in [false, true] {
            if svc.pinger.targets().iter().any(|t| t.addr.is_ipv6() == v6) {
                svc.open(v6, false);
            }
        }
        svc
    }

    fn open(&mut self, v6: bool, raw: bool) {
        self.socks[usize::from(v6)] = SockState::Opening { raw };
        let tag = self.tag_base + u64::from(v6) * 2 + u64::from(raw);
        let addr =
            if v6 { SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)) } else { (Ipv4Addr::UNSPECIFIED, 0).into() };
        let kind = SockKind::Icmp { v6, raw, ttl: self.ttl };
        self.out.push_back(Output::Open { tag, kind, addr });
    }

    /// The pinger (targets, statistics, span).
    pub fn pinger(&self) -> &Pinger {
        &self.pinger
    }
    /// The next event to report.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.pinger.poll_event()
    }
    /// Why the run could not start, if it could not.
    pub fn failure(&self) -> Option<SocketFailure> {
        self.failure
    }
    /// Whether the socket of this family is raw (`None` until it is open).
    pub fn is_raw(&self, v6: bool) -> Option<bool> {
        match self.socks[usize::from(v6)] {
            SockState::Open { raw, .. } => Some(raw),
            _ => None,
        }
    }
    /// True if `tag` answers one of our `Open`s.
    pub fn owns_tag(&self, tag: u64) -> bool {
        (self.tag_base..self.tag_base + 4).contains(&tag)
    }
    /// True if `sock` is one of our sockets.
    pub fn owns_sock(&self, sock: SockId) -> bool {
        self.socks.iter().any(|s| matches!(s, SockState::Open { sock: x, .. } if *x == sock))
    }

    /// Stop the run and close its sockets (for an embedder that runs many short pings); the
    /// `Close` outputs come out of `poll_output` as usual.
    pub fn close(&mut self, now: Instant) {
        self.pinger.stop(now);
        for s in &mut self.socks {
            if let SockState::Open { sock, .. } = *s {
                self.out.push_back(Output::Close { sock, flush: false });
            }
            *s = SockState::Gone;
        }
    }

    fn opened(&mut self, now: Instant, tag: u64, result: Result<netlab_core::Opened, OpenError>) {
        let offset = tag.wrapping_sub(self.tag_base);
        let (v6, raw) = (offset & 2 != 0, offset & 1 != 0);
        match result {
            Ok(o) => {
                log::debug!(
                    "ICMP{} {} socket open",
                    if v6 { "v6" } else { "v4" },
                    if raw { "raw" } else { "datagram" }
                );
                self.socks[usize::from(v6)] = SockState::Open { sock: o.sock, raw };
                self.pinger.set_check_ident(v6, raw);
            }
            Err(e) if !raw => {
                log::debug!("no datagram ping socket ({e}); trying a raw socket");
                self.open(v6, true);
            }
            Err(error) => {
                self.socks[usize::from(v6)] = SockState::Gone;
                self.failure.get_or_insert(SocketFailure { v6, error });
                self.pinger.stop(now);
            }
        }
        let waiting = self.socks.iter().any(|s| matches!(s, SockState::Opening { .. }));
        if !waiting && self.failure.is_none() {
            self.pinger.start(now);
            self.flush_transmits();
        }
    }

    fn flush_transmits(&mut self) {
        while let Some(t) = self.pinger.poll_transmit() {
            if let SockState::Open { sock, .. } = self.socks[usize::from(t.to.is_ipv6())] {
                let to = SocketAddr::new(t.to, 0);
                self.out.push_back(Output::SendTo { sock, to, data: Bytes::from(t.data) });
            }
        }
    }

    fn received(&mut self, now: Instant, from: IpAddr, data: &[u8], meta: netlab_core::RecvMeta) {
        if self.pinger.handle_icmp(now, from, data, meta) == Claim::NotOurs {
            self.foreign += 1;
            log::trace!("ignored an ICMP message from {from} ({} bytes)", data.len());
        }
    }
}

impl Service for PingService {
    fn name(&self) -> &'static str {
        "ping"
    }

    fn handle_input(&mut self, now: Instant, input: Input<'_>) {
        match input {
            Input::Opened { tag, result } if self.owns_tag(tag) => self.opened(now, tag, result),
            Input::Datagram { sock, from, data, meta } if self.owns_sock(sock) => {
                self.received(now, from.ip(), data, meta)
            }
            Input::SendFailed { sock, to, error } if self.owns_sock(sock) => {
                self.pinger.send_failed(now, to.ip(), error.to_string())
            }
            Input::Closed { sock, .. } => {
                for s in &mut self.socks {
                    if matches!(s, SockState::Open { sock: x, .. } if *x == sock) {
                        *s = SockState::Gone;
                    }
                }
            }
            other => log::trace!("ping: ignored {other:?}"),
        }
        self.flush_transmits();
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.pinger.handle_timeout(now);
        self.flush_transmits();
    }

    fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.pinger.poll_timeout()
    }

    fn handle_shutdown(&mut self, now: Instant) {
        self.pinger.stop(now);
    }

    fn is_done(&self) -> bool {
        self.failure.is_some() || self.pinger.is_done()
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        let sum = |f: fn(&crate::Stats) -> u64| self.pinger.targets().iter().map(|t| f(&t.stats)).sum();
        vec![
            ("sent", sum(|s| s.sent)),
            ("received", sum(|s| s.received)),
            ("dups", sum(|s| s.dups)),
            ("damaged", sum(|s| s.damaged)),
            ("errors", sum(|s| s.errors)),
            ("foreign", self.foreign),
        ]
    }
}

#[cfg(test)]
#[path = "service_tests.rs"]
mod tests;
