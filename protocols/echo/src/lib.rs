//! netlab-echo: the Echo protocol (RFC 862) over TCP and UDP, as a sans-IO service.
//!
//! **What it is.** Whatever a client sends comes back unchanged: on TCP, every byte on the same
//! connection; on UDP, every datagram to its sender.
//!
//! **What it never does.** Open a socket, read the clock, or reflect traffic at privileged ports:
//! datagrams from source port 0 or below 1024 are dropped and counted, as inetd-style servers do, so
//! that a forged packet cannot set two echo/chargen services bouncing at each other forever.
//!
//! **The life of one session.** TCP: `Accepted` → `Stream` bytes are written back → at `Eof` the
//! service closes with a flush, so the client gets everything it sent before it half-closed. A
//! connection that sends nothing for the idle timeout is closed, so idle clients cannot hold every
//! slot forever. UDP: a `Datagram` in is a `SendTo` out.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use netlab_core::{Bytes, Input, Output, Service, SockId, SockKind, StreamLimits, TimerId, Timers};

/// Tags of the two `Listen` outputs.
const TAG_TCP: u64 = 1;
const TAG_UDP: u64 = 2;

pub use netlab_core::is_reflection_risk;

/// The echo service: TCP and UDP on the same address.
pub struct EchoService {
    /// Pending outputs.
    out: VecDeque<Output>,
    /// Datagrams dropped because they came from port 0 or a privileged port.
    dropped_privileged: u64,
    /// Close a TCP connection after this long without input (`None`: never).
    idle: Option<Duration>,
    /// Each open connection's idle timer, indexed by its slab index (dense, so a vector: no hashing
    /// on the per-read path) and checked against its generation. An input only moves the deadline
    /// (lazy re-arm in `Timers`).
    conns: Vec<Option<(u32, TimerId)>>,
    timers: Timers<SockId>,
    /// Connections closed for idling.
    idle_closed: u64,
}

impl EchoService {
    /// Echo over TCP on `tcp` and over UDP on `udp` (either may be `None`), closing TCP connections
    /// idle for longer than `idle` (if given).
    pub fn new(
        tcp: Option<(SocketAddr, StreamLimits)>,
        udp: Option<SocketAddr>,
        idle: Option<Duration>,
    ) -> Self {
        let mut out = VecDeque::new();
        if let Some((addr, limits)) = tcp {
            out.push_back(Output::Listen { tag: TAG_TCP, kind: SockKind::TcpListener, addr, limits });
        }
        if let Some(addr) = udp {
            out.push_back(Output::Listen {
                tag: TAG_UDP,
                kind: SockKind::Udp,
                addr,
                limits: Default::default(),
            });
        }
        EchoService {
            out,
            dropped_privileged: 0,
            idle,
            conns: Vec::new(),
            timers: Timers::new(),
            idle_closed: 0,
        }
    }
}

impl EchoService {
    /// The idle timer of a live connection.
    fn timer_of(&self, sock: SockId) -> Option<TimerId> {
        match self.conns.get(sock.index as usize) {
            Some(Some((generation, timer))) if *generation == sock.generation => Some(*timer),
            _ => None,
        }
    }

    /// Drop a connection's timer entry, returning the timer.
    fn forget(&mut self, sock: SockId) -> Option<TimerId> {
        let timer = self.timer_of(sock)?;
        self.conns[sock.index as usize] = None;
        Some(timer)
    }
}

impl Service for EchoService {
    fn name(&self) -> &'static str {
        "echo"
    }

    fn handle_input(&mut self, now: Instant, input: Input<'_>) {
        match input {
            Input::Accepted { sock, .. } => {
                if let Some(idle) = self.idle {
                    let timer = self.timers.insert(now + idle, sock);
                    let i = sock.index as usize;
                    if self.conns.len() <= i {
                        self.conns.resize(i + 1, None);
                    }
                    self.conns[i] = Some((sock.generation, timer));
                }
            }
            Input::Stream { sock, data } => {
                if let (Some(idle), Some(timer)) = (self.idle, self.timer_of(sock)) {
                    self.timers.reschedule(timer, now + idle);
                }
                self.out.push_back(Output::Write { sock, data: Bytes::copy_from_slice(data) })
            }
            Input::Eof { sock } => self.out.push_back(Output::Close { sock, flush: true }),
            Input::Datagram { sock, from, data, .. } => {
                if is_reflection_risk(from) {
                    self.dropped_privileged += 1;
                    log::debug!("echo: dropped a datagram from privileged port {from}");
                } else {
                    self.out.push_back(Output::SendTo { sock, to: from, data: Bytes::copy_from_slice(data) });
                }
            }
            Input::Opened { result: Err(e), tag } => log::error!("echo: socket {tag} failed: {e}"),
            Input::Closed { sock, .. } => {
                if let Some(timer) = self.forget(sock) {
                    self.timers.cancel(timer);
                }
            }
            Input::Opened { .. } | Input::SendFailed { .. } => {}
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        while let Some((_, sock)) = self.timers.pop_expired(now) {
            self.forget(sock);
            self.idle_closed += 1;
            log::debug!("echo: closing {sock}: idle");
            self.out.push_back(Output::Close { sock, flush: true });
        }
    }

    fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next_deadline()
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        vec![("dropped_privileged", self.dropped_privileged), ("idle_closed", self.idle_closed)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlab_core::RecvMeta;
    use netlab_core::testkit::Harness;

    fn harness() -> Harness<EchoService> {
        let addr = "127.0.0.1:7".parse().unwrap();
        let idle = Some(Duration::from_secs(10));
        let mut h = Harness::new(EchoService::new(Some((addr, StreamLimits::default())), Some(addr), idle));
        assert!(h.start().is_empty());
        h
    }

    #[test]
    fn stream_bytes_come_back_and_eof_flushes() {
        let mut h = harness();
        let sock = h.new_sock();
        let out = h.input(Input::Stream { sock, data: b"abc" });
        assert!(matches!(&out[..], [Output::Write { sock: s, data }] if *s == sock && &data[..] == b"abc"));
        let out = h.input(Input::Eof { sock });
        assert!(matches!(&out[..], [Output::Close { flush: true, .. }]));
    }

    #[test]
    fn datagrams_echo_except_from_privileged_ports() {
        let mut h = harness();
        let sock = h.new_sock();
        let meta = RecvMeta::default();
        for (port, echoed) in [(40000u16, true), (1024, true), (1023, false), (7, false), (0, false)] {
            let from = SocketAddr::from(([127, 0, 0, 1], port));
            let out = h.input(Input::Datagram { sock, from, data: b"x", meta });
            assert_eq!(!out.is_empty(), echoed, "port {port}");
        }
        assert_eq!(h.svc.counters()[0], ("dropped_privileged", 3));
    }

    #[test]
    fn idle_connections_are_closed_and_input_keeps_them_open() {
        let mut h = harness();
        let (busy, quiet) = (h.new_sock(), h.new_sock());
        let listener = h.new_sock();
        let peer = "127.0.0.1:5000".parse().unwrap();
        for sock in [busy, quiet] {
            assert!(h.input(Input::Accepted { listener, sock, peer }).is_empty());
        }
        for _ in 0..3 {
            assert!(h.advance(Duration::from_secs(6)).is_empty() || h.svc.idle_closed == 1);
            h.input(Input::Stream { sock: busy, data: b"." });
        }
        assert_eq!(h.svc.idle_closed, 1, "the quiet one went at 10 s");
        let out = h.advance(Duration::from_secs(11));
        assert!(matches!(&out[..], [Output::Close { sock, .. }] if *sock == busy));
        h.input(Input::Closed { sock: busy, reason: netlab_core::CloseReason::Requested });
        assert!(
            h.svc.conns.iter().all(Option::is_none) && h.svc.timers.is_empty(),
            "nothing kept for closed sockets"
        );
    }
}
