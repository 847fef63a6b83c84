//! [`Client`]: the client side of one transfer, sans-IO — the request and its retries, the server's
//! TID learned from its first answer, option checks, then the same [`Sender`]/[`Receiver`] the server
//! uses. `netlab tftp` drives it with a blocking socket; the tests drive it on virtual time.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::files::{ReadFile, WriteFile};
use crate::options::{Negotiated, accept_oack};
use crate::packet::{ErrorCode, Kind, Mode, Packet, error_packet};
use crate::transfer::{Receiver, Retry, Sender, Status};

/// A datagram to send.
pub type Transmit = (SocketAddr, Bytes);

/// What the client is doing.
enum Phase {
    /// Request sent, no answer yet. Holds the file until the transfer starts.
    Requesting(Option<Box<dyn WriteFile>>, Option<Box<dyn ReadFile>>),
    /// Getting.
    Recv(Receiver),
    /// Putting.
    Send(Sender),
    /// Ended before a machine existed.
    Ended(Status),
}

/// One get or put.
pub struct Client {
    /// What the client is doing.
    phase: Phase,
    /// The server's request port.
    server: SocketAddr,
    /// The server's transfer address, once it answered.
    tid: Option<SocketAddr>,
    /// Transfer mode.
    mode: Mode,
    /// Options as asked.
    asked: Vec<(String, String)>,
    /// The request packet, resent until answered.
    request: Bytes,
    /// Deadline and backoff for the request.
    retry: Retry,
    /// First timeout for the machine, unless the server agreed another.
    timeout: Duration,
    /// Resends allowed before giving up.
    max_retries: u32,
    /// What the server agreed to.
    negotiated: Negotiated,
}

impl Client {
    /// Read `name` from `server` into `sink`.
    #[allow(clippy::too_many_arguments)]
    pub fn get(
        server: SocketAddr,
        name: &str,
        mode: Mode,
        options: &[(&str, &str)],
        sink: Box<dyn WriteFile>,
        now: Instant,
        timeout: Duration,
        max_retries: u32,
    ) -> Self {
        Self::new(
            Kind::Read,
            server,
            name,
            mode,
            options,
            Phase::Requesting(Some(sink), None),
            now,
            timeout,
            max_retries,
        )
    }

    /// Write `source` to `server` as `name`.
    #[allow(clippy::too_many_arguments)]
    pub fn put(
        server: SocketAddr,
        name: &str,
        mode: Mode,
        options: &[(&str, &str)],
        source: Box<dyn ReadFile>,
        now: Instant,
        timeout: Duration,
        max_retries: u32,
    ) -> Self {
        Self::new(
            Kind::Write,
            server,
            name,
            mode,
            options,
            Phase::Requesting(None, Some(source)),
            now,
            timeout,
            max_retries,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn new(
        kind: Kind,
        server: SocketAddr,
        name: &str,
        mode: Mode,
        options: &[(&str, &str)],
        phase: Phase,
        now: Instant,
        timeout: Duration,
        max_retries: u32,
    ) -> Self {
        let request =
            Bytes::from(Packet::Request { kind, filename: name, mode, options: options.to_vec() }.to_vec());
        Client {
            phase,
            server,
            tid: None,
            mode,
            asked: options.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
            request,
            retry: Retry::new(now, timeout, max_retries),
            timeout,
            max_retries,
            negotiated: Negotiated::default(),
        }
    }

    /// Send the request.
    pub fn start(&mut self, now: Instant, out: &mut Vec<Transmit>) {
        self.retry.reset(now);
        out.push((self.server, self.request.clone()));
    }

    /// What was agreed (defaults until the server answered).
    pub fn negotiated(&self) -> &Negotiated {
        &self.negotiated
    }

    /// Data bytes moved so far.
    pub fn bytes(&self) -> u64 {
        match &self.phase {
            Phase::Recv(r) => r.bytes,
            Phase::Send(s) => s.bytes,
            _ => 0,
        }
    }

    /// Where the transfer stands. A get is [`Status::Complete`] once the file is written.
    pub fn status(&self) -> Status {
        match &self.phase {
            Phase::Requesting(..) => Status::Running,
            Phase::Recv(r) => r.status().clone(),
            Phase::Send(s) => s.status().clone(),
            Phase::Ended(st) => st.clone(),
        }
    }

    /// When [`Client::on_timeout`] is due.
    pub fn deadline(&self) -> Instant {
        match &self.phase {
            Phase::Recv(r) => r.retry.deadline,
            Phase::Send(s) => s.retry.deadline,
            _ => self.retry.deadline,
        }
    }

    /// A datagram arrived.
    pub fn on_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8], out: &mut Vec<Transmit>) {
        let Ok(pkt) = Packet::parse(data) else { return };
        match self.tid {
            None if from.ip() == self.server.ip() => self.tid = Some(from),
            Some(tid) if tid == from => {}
            _ => {
                // As the server does: no answer to an ERROR, nor to a privileged (forgeable) port.
                if !matches!(pkt, Packet::Error { .. }) && !netlab_core::is_reflection_risk(from) {
                    out.push((from, Bytes::from(error_packet(ErrorCode::UnknownTid, "Unknown transfer ID"))));
                }
                return;
            }
        }
        let mut pkts = Vec::new();
        match &mut self.phase {
            Phase::Requesting(..) => self.on_first(now, &pkt, &mut pkts),
            // A resent OACK: our ACK 0 was lost (get), or our DATA 1 was (put: our own timeout resends).
            Phase::Recv(r) if matches!(pkt, Packet::Oack { .. }) => {
                if r.bytes == 0 && r.status() == &Status::Running {
                    pkts.push(Bytes::from(crate::packet::ack_packet(0)));
                }
            }
            Phase::Send(_) if matches!(pkt, Packet::Oack { .. }) => {}
            Phase::Recv(r) => r.on_packet(now, &pkt, &mut pkts),
            Phase::Send(s) => s.on_packet(now, &pkt, &mut pkts),
            Phase::Ended(_) => {}
        }
        let to = self.tid.unwrap_or(self.server);
        out.extend(pkts.into_iter().map(|p| (to, p)));
    }

    /// The server's first answer: options, then the machine.
    fn on_first(&mut self, now: Instant, pkt: &Packet<'_>, pkts: &mut Vec<Bytes>) {
        let Phase::Requesting(sink, source) = &mut self.phase else { return };
        let retry = |n: &Negotiated| Retry::new(now, n.timeout.unwrap_or(self.timeout), self.max_retries);
        let asked: Vec<(&str, &str)> = self.asked.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let n = match pkt {
            Packet::Oack { options } => match accept_oack(&asked, options) {
                Ok(n) => n,
                Err(why) => {
                    pkts.push(Bytes::from(error_packet(ErrorCode::OptionRefused, why)));
                    self.phase = Phase::Ended(Status::Failed(why.into()));
                    return;
                }
            },
            Packet::Error { code, message } => {
                let msg: String = message.chars().take(200).filter(|c| !c.is_control()).collect();
                self.phase = Phase::Ended(Status::Failed(format!("server error {}: {msg}", code.code())));
                return;
            }
            _ => Negotiated::default(),
        };
        self.negotiated = n.clone();
        match (sink.take(), source.take(), pkt) {
            (Some(sink), _, Packet::Oack { .. }) => {
                let first = Some(Bytes::from(crate::packet::ack_packet(0)));
                // A server that announced tsize may not send more (octet: tsize is exact).
                let cap = crate::options::upload_cap(self.mode, n.tsize, None);
                let mut r = Receiver::new(sink, self.mode, n.blksize, n.windowsize, retry(&n), first, cap);
                r.start(now, pkts);
                self.phase = Phase::Recv(r);
            }
            (Some(sink), _, Packet::Data { block: 1, .. }) => {
                let mut r = Receiver::new(sink, self.mode, n.blksize, 1, retry(&n), None, None);
                r.on_packet(now, pkt, pkts);
                self.phase = Phase::Recv(r);
            }
            (_, Some(source), Packet::Oack { .. } | Packet::Ack { block: 0 }) => {
                let mut s = Sender::new(source, self.mode, n.blksize, n.windowsize, retry(&n), None);
                s.start(now, pkts);
                self.phase = Phase::Send(s);
            }
            _ => {
                pkts.push(Bytes::from(error_packet(ErrorCode::IllegalOperation, "Unexpected packet")));
                self.phase = Phase::Ended(Status::Failed("unexpected first answer".into()));
            }
        }
    }

    /// The deadline passed.
    pub fn on_timeout(&mut self, now: Instant, out: &mut Vec<Transmit>) {
        let mut pkts = Vec::new();
        match &mut self.phase {
            Phase::Requesting(..) if now >= self.retry.deadline => {
                if self.retry.backoff(now) {
                    out.push((self.server, self.request.clone()));
                } else {
                    self.phase = Phase::Ended(Status::Failed("no answer from server".into()));
                }
            }
            Phase::Recv(r) => r.on_timeout(now, &mut pkts),
            Phase::Send(s) => s.on_timeout(now, &mut pkts),
            _ => {}
        }
        let to = self.tid.unwrap_or(self.server);
        out.extend(pkts.into_iter().map(|p| (to, p)));
    }
}
