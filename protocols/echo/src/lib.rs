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
//! service closes with a flush, so the client gets everything it sent before it half-closed. UDP: a
//! `Datagram` in is a `SendTo` out.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use netlab_core::{Bytes, Input, Output, Service, SockKind, StreamLimits};

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
}

impl EchoService {
    /// Echo over TCP on `tcp` and over UDP on `udp` (either may be `None`).
    pub fn new(tcp: Option<(SocketAddr, StreamLimits)>, udp: Option<SocketAddr>) -> Self {
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
        EchoService { out, dropped_privileged: 0 }
    }
}

impl Service for EchoService {
    fn name(&self) -> &'static str {
        "echo"
    }

    fn handle_input(&mut self, _now: Instant, input: Input<'_>) {
        match input {
            Input::Stream { sock, data } => {
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
            Input::Opened { .. }
            | Input::Accepted { .. }
            | Input::SendFailed { .. }
            | Input::Closed { .. } => {}
        }
    }

    fn handle_timeout(&mut self, _now: Instant) {}

    fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        vec![("dropped_privileged", self.dropped_privileged)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlab_core::RecvMeta;
    use netlab_core::testkit::Harness;

    fn harness() -> Harness<EchoService> {
        let addr = "127.0.0.1:7".parse().unwrap();
        let mut h = Harness::new(EchoService::new(Some((addr, StreamLimits::default())), Some(addr)));
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
        assert_eq!(h.svc.counters(), vec![("dropped_privileged", 3)]);
    }
}
