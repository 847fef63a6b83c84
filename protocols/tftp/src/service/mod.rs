//! [`TftpService`]: the TFTP server as a [`Service`] — one listening socket, and one socket and one
//! state machine per transfer, all deadlines in one [`Timers`] heap.
//!
//! Malformed packets, by one rule:
//! - On the listening socket, a datagram too short to hold an opcode, or a DATA/ACK/ERROR/OACK (a
//!   stray from some old transfer), is dropped; any other unparseable request (unknown opcode, missing
//!   NUL, empty name, bad mode, option without value) gets ERROR 4 and nothing is opened.
//! - On a transfer's socket, a datagram from anyone but the peer gets ERROR 5 (unless it is itself an
//!   ERROR) and changes nothing; an unparseable datagram from the peer is dropped (retransmission
//!   recovers); a well-formed packet of the wrong type (DATA to a read, ACK to a write, a request)
//!   ends the transfer with ERROR 4.
//! - Nothing ever answers an ERROR packet or a datagram from port 0, and requests from privileged
//!   ports (below 1024) are dropped: see `netlab_core::is_reflection_risk`.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use netlab_core::{Input, Opened, Output, Service, SockId, SockKind, TimerId, Timers};

mod request;

use crate::files::FileSystem;
use crate::options::MAX_BLKSIZE;
use crate::packet::{ErrorCode, Kind, Mode, Packet, error_packet};
use crate::transfer::{Receiver, Sender, Status};

/// Tag of the listening socket's `Listen`; transfer sockets use tags from 1 up.
const TAG_LISTEN: u64 = 0;

/// Server settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where the listening socket binds.
    pub addr: SocketAddr,
    /// Accept write requests at all.
    pub allow_upload: bool,
    /// Largest upload in bytes (None: no cap). A declared tsize over it is refused up front.
    pub max_upload: Option<u64>,
    /// Most transfers at once.
    pub max_transfers: usize,
    /// Most transfers at once from one IP address.
    pub max_per_client: usize,
    /// First retransmit timeout when the client does not negotiate one.
    pub timeout: Duration,
    /// Resends (with doubling timeout) before a transfer is dropped.
    pub max_retries: u32,
    /// Largest blksize agreed to.
    pub max_blksize: usize,
}

impl Config {
    /// Defaults for a server listening on `addr`: no uploads, 1 s timeout, 5 retries.
    pub fn new(addr: SocketAddr) -> Self {
        Config {
            addr,
            allow_upload: false,
            max_upload: None,
            max_transfers: 1000,
            max_per_client: 100,
            timeout: Duration::from_secs(1),
            max_retries: 5,
            max_blksize: MAX_BLKSIZE,
        }
    }
}

/// A transfer's state machine.
enum Machine {
    /// Serving a read.
    Send(Sender),
    /// Serving a write.
    Recv(Receiver),
}

impl Machine {
    fn status(&self) -> &Status {
        match self {
            Machine::Send(s) => s.status(),
            Machine::Recv(r) => r.status(),
        }
    }
    fn deadline(&self) -> Instant {
        match self {
            Machine::Send(s) => s.retry.deadline,
            Machine::Recv(r) => r.retry.deadline,
        }
    }
    fn bytes(&self) -> u64 {
        match self {
            Machine::Send(s) => s.bytes,
            Machine::Recv(r) => r.bytes,
        }
    }
}

/// One transfer, from request to log line.
struct Transfer {
    /// The client's address and port (its TID).
    peer: SocketAddr,
    /// File name for the log (control characters removed, shortened).
    file: String,
    /// Read or write.
    kind: Kind,
    /// Transfer mode.
    mode: Mode,
    /// Agreed options, for the log.
    options: String,
    /// When the request arrived.
    started: Instant,
    /// The state machine.
    machine: Machine,
    /// Its socket, once opened.
    sock: Option<SockId>,
    /// Its deadline in the service's heap, while it has a socket.
    timer: Option<TimerId>,
    /// Its log line is written (an upload is logged when complete, before its dally ends).
    logged: bool,
}

/// The TFTP server.
pub struct TftpService<F: FileSystem> {
    /// Settings.
    cfg: Config,
    /// Where files come from and go to.
    fs: F,
    /// The listening socket and its bound address.
    listener: Option<Opened>,
    /// Outputs waiting for `poll_output`.
    out: VecDeque<Output>,
    /// Transfers waiting for their socket, by `Open` tag.
    pending: HashMap<u64, Transfer>,
    /// Transfers with a socket.
    active: HashMap<SockId, Transfer>,
    /// Peers (address and port) with a pending or active transfer, and its socket once open: a
    /// repeated request is ignored.
    peers: HashMap<SocketAddr, Option<SockId>>,
    /// Transfers per client IP.
    per_ip: HashMap<IpAddr, usize>,
    /// One deadline per active transfer.
    timers: Timers<SockId>,
    /// Tag of the next `Open`.
    next_tag: u64,
    /// The `now` of the current call, for durations in log lines.
    now: Option<Instant>,
    /// Rate limit for refusal log lines.
    refusal_log: request::RefusalLog,
    /// Scratch list of packets a machine wants sent.
    scratch: Vec<Bytes>,
    /// What is counted.
    counters: Counters,
}

/// What the service counts.
#[derive(Default)]
struct Counters {
    /// Transfers that ended well.
    ok: u64,
    /// Transfers that failed (timeout, peer error, I/O error, shutdown).
    failed: u64,
    /// Requests answered with an ERROR instead of a transfer.
    refused: u64,
    /// Datagrams that did not parse, or were strays on the listener.
    malformed: u64,
    /// Datagrams on a transfer socket from someone other than its peer.
    foreign_tid: u64,
    /// Requests repeated by a peer that already has a transfer.
    duplicate_requests: u64,
    /// Requests from ports below 1024, dropped.
    dropped_privileged: u64,
    /// Data bytes of finished reads.
    bytes_sent: u64,
    /// Data bytes of finished writes.
    bytes_received: u64,
}

impl<F: FileSystem> TftpService<F> {
    /// A server with settings `cfg` over file system `fs`.
    pub fn new(cfg: Config, fs: F) -> Self {
        let mut out = VecDeque::new();
        out.push_back(Output::Listen {
            tag: TAG_LISTEN,
            kind: SockKind::Udp,
            addr: cfg.addr,
            limits: Default::default(),
        });
        TftpService {
            cfg,
            fs,
            listener: None,
            out,
            pending: HashMap::new(),
            active: HashMap::new(),
            peers: HashMap::new(),
            per_ip: HashMap::new(),
            timers: Timers::new(),
            next_tag: 1,
            now: None,
            scratch: Vec::new(),
            refusal_log: Default::default(),
            counters: Counters::default(),
        }
    }

    /// Transfers in progress (including those waiting for their socket).
    pub fn transfers(&self) -> usize {
        self.pending.len() + self.active.len()
    }

    fn send(&mut self, sock: SockId, to: SocketAddr, data: Bytes) {
        self.out.push_back(Output::SendTo { sock, to, data });
    }

    fn reply_error(&mut self, sock: SockId, to: SocketAddr, code: ErrorCode, msg: &str) {
        self.send(sock, to, Bytes::from(error_packet(code, msg)));
    }

    /// A transfer's socket is open: send its first packet.
    fn on_opened(&mut self, now: Instant, tag: u64, opened: Opened) {
        let Some(mut t) = self.pending.remove(&tag) else {
            // Nobody waits for it any more (shutdown): give it back.
            self.out.push_back(Output::Close { sock: opened.sock, flush: false });
            return;
        };
        t.sock = Some(opened.sock);
        let mut pkts = std::mem::take(&mut self.scratch);
        match &mut t.machine {
            Machine::Send(s) => s.start(now, &mut pkts),
            Machine::Recv(r) => r.start(now, &mut pkts),
        }
        t.timer = Some(self.timers.insert(t.machine.deadline(), opened.sock));
        self.peers.insert(t.peer, Some(opened.sock));
        self.active.insert(opened.sock, t);
        self.after_step(opened.sock, pkts);
    }

    /// Send what a machine produced, then finish the transfer if it ended.
    fn after_step(&mut self, sock: SockId, mut pkts: Vec<Bytes>) {
        let Some(t) = self.active.get(&sock) else { return };
        let peer = t.peer;
        for p in pkts.drain(..) {
            self.send(sock, peer, p);
        }
        self.scratch = pkts;
        let Some(t) = self.active.get_mut(&sock) else { return };
        // Progress only moves the deadline later: a slot write, no heap push (lazy re-arm).
        if let Some(id) = t.timer {
            self.timers.reschedule(id, t.machine.deadline());
        }
        match t.machine.status().clone() {
            Status::Running => {}
            Status::Complete if !t.logged => {
                t.logged = true;
                log_outcome(&mut self.counters, self.now, t, "ok");
            }
            Status::Complete => {}
            Status::Finished => self.finish(sock, "ok"),
            Status::Failed(why) => self.finish(sock, &why),
        }
    }

    /// End a transfer: log it, free its socket and its slot in every table.
    fn finish(&mut self, sock: SockId, outcome: &str) {
        let Some(t) = self.active.remove(&sock) else { return };
        if let Some(id) = t.timer {
            self.timers.cancel(id);
        }
        self.out.push_back(Output::Close { sock, flush: false });
        self.release(&t, outcome);
    }

    /// Forget a transfer (its socket is already closed or never opened), logging it if not yet.
    fn release(&mut self, t: &Transfer, outcome: &str) {
        self.peers.remove(&t.peer);
        if let Some(n) = self.per_ip.get_mut(&t.peer.ip()) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&t.peer.ip());
            }
        }
        if !t.logged {
            log_outcome(&mut self.counters, self.now, t, outcome);
        }
    }
    /// A datagram on a transfer's socket.
    fn on_transfer_packet(&mut self, now: Instant, sock: SockId, from: SocketAddr, data: &[u8]) {
        let Some(t) = self.active.get_mut(&sock) else { return };
        if from != t.peer {
            self.counters.foreign_tid += 1;
            log::debug!("tftp: packet from foreign TID {from} on transfer with {}", t.peer);
            // Never answer a privileged port (a forged "chargen" source would start a reply loop
            // that lasts as long as the transfer), nor an ERROR (two servers would ping-pong).
            if !netlab_core::is_reflection_risk(from)
                && !matches!(Packet::parse(data), Ok(Packet::Error { .. }))
            {
                self.reply_error(sock, from, ErrorCode::UnknownTid, "Unknown transfer ID");
            }
            return;
        }
        let Ok(pkt) = Packet::parse(data) else {
            self.counters.malformed += 1;
            log::debug!("tftp: dropped a malformed packet from {from}");
            return;
        };
        let mut pkts = std::mem::take(&mut self.scratch);
        match &mut t.machine {
            Machine::Send(s) => s.on_packet(now, &pkt, &mut pkts),
            Machine::Recv(r) => r.on_packet(now, &pkt, &mut pkts),
        }
        self.after_step(sock, pkts);
    }
}

/// Count a finished transfer and write its one log line.
fn log_outcome(counters: &mut Counters, now: Option<Instant>, t: &Transfer, outcome: &str) {
    let ok = outcome == "ok";
    if ok {
        counters.ok += 1;
    } else {
        counters.failed += 1;
    }
    let bytes = t.machine.bytes();
    match t.kind {
        Kind::Read => counters.bytes_sent += bytes,
        Kind::Write => counters.bytes_received += bytes,
    }
    log::info!(
        "tftp: {} {} \"{}\" {} [{}] {} bytes in {:.3}s: {}",
        t.peer,
        verb(t.kind),
        t.file,
        t.mode.as_str(),
        t.options,
        bytes,
        now.map_or(0.0, |n| n.saturating_duration_since(t.started).as_secs_f64()),
        outcome
    );
}

fn verb(kind: Kind) -> &'static str {
    match kind {
        Kind::Read => "get",
        Kind::Write => "put",
    }
}

/// A file name fit for a log line: no control characters, at most 100 characters.
fn printable(name: &str) -> String {
    name.chars().filter(|c| !c.is_control()).take(100).collect()
}

impl<F: FileSystem> Service for TftpService<F> {
    fn name(&self) -> &'static str {
        "tftp"
    }

    fn handle_input(&mut self, now: Instant, input: Input<'_>) {
        self.now = Some(now);
        match input {
            Input::Opened { tag: TAG_LISTEN, result: Ok(opened) } => self.listener = Some(opened),
            Input::Opened { tag: TAG_LISTEN, result: Err(e) } => log::error!("tftp: cannot listen: {e}"),
            Input::Opened { tag, result: Ok(opened) } => self.on_opened(now, tag, opened),
            Input::Opened { tag, result: Err(e) } => {
                if let Some(t) = self.pending.remove(&tag) {
                    log::warn!("tftp: cannot open a transfer socket: {e}");
                    if let Some(l) = self.listener {
                        self.reply_error(l.sock, t.peer, ErrorCode::Undefined, "Server cannot open a socket");
                    }
                    self.release(&t, "no socket");
                }
            }
            Input::Datagram { sock, from, data, .. } => {
                if from.port() == 0 {
                    return;
                }
                if self.listener.is_some_and(|l| l.sock == sock) {
                    if netlab_core::is_reflection_risk(from) {
                        // A forged request "from" another small service would set us bouncing.
                        self.counters.dropped_privileged += 1;
                        log::debug!("tftp: dropped a request from privileged port {from}");
                        return;
                    }
                    self.on_request(now, sock, from, data);
                } else {
                    self.on_transfer_packet(now, sock, from, data);
                }
            }
            Input::Closed { sock, reason } => {
                if self.listener.is_some_and(|l| l.sock == sock) {
                    self.listener = None;
                } else if self.active.contains_key(&sock) {
                    if let Some(t) = self.active.remove(&sock) {
                        self.release(&t, &format!("socket {reason}"));
                    }
                }
            }
            Input::SendFailed { sock, to, error } => {
                log::debug!("tftp: send on {sock} to {to} failed: {error}")
            }
            Input::Accepted { .. } | Input::Stream { .. } | Input::Eof { .. } => {}
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.now = Some(now);
        while let Some((_, sock)) = self.timers.pop_expired(now) {
            let Some(t) = self.active.get_mut(&sock) else { continue };
            t.timer = None;
            let mut pkts = std::mem::take(&mut self.scratch);
            match &mut t.machine {
                Machine::Send(s) => s.on_timeout(now, &mut pkts),
                Machine::Recv(r) => r.on_timeout(now, &mut pkts),
            }
            let at = t.machine.deadline();
            if t.machine.status() != &Status::Finished && !matches!(t.machine.status(), Status::Failed(_)) {
                t.timer = Some(self.timers.insert(at, sock));
            }
            self.after_step(sock, pkts);
        }
    }

    fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next_deadline()
    }

    fn handle_shutdown(&mut self, now: Instant) {
        self.now = Some(now);
        let socks: Vec<SockId> = self.active.keys().copied().collect();
        for sock in socks {
            let peer = self.active[&sock].peer;
            self.reply_error(sock, peer, ErrorCode::Undefined, "Server shutting down");
            self.finish(sock, "server shutdown");
        }
        for (_, t) in std::mem::take(&mut self.pending) {
            self.release(&t, "server shutdown");
        }
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        let c = &self.counters;
        vec![
            ("transfers_now", self.transfers() as u64),
            ("transfers_ok", c.ok),
            ("transfers_failed", c.failed),
            ("requests_refused", c.refused),
            ("malformed", c.malformed),
            ("foreign_tid", c.foreign_tid),
            ("duplicate_requests", c.duplicate_requests),
            ("dropped_privileged", c.dropped_privileged),
            ("bytes_sent", c.bytes_sent),
            ("bytes_received", c.bytes_received),
        ]
    }
}
