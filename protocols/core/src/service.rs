//! The service interface: inputs in, outputs out, then drain.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;

/// Names one socket owned by the reactor: its slab index plus a generation, so that an id kept past the
/// socket's close can never be mistaken for a new socket that reuses the same slab slot.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct SockId {
    /// Slab index, which is also the socket's `mio::Token`.
    pub index: u32,
    /// Bumped every time the slot is freed.
    pub generation: u32,
}

impl fmt::Display for SockId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}.{}", self.index, self.generation)
    }
}

/// What kind of socket a service asks for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SockKind {
    /// A listening TCP socket; accepted connections are reported as [`Input::Accepted`].
    TcpListener,
    /// A UDP socket.
    Udp,
    /// An ICMP socket: ICMPv4 (`v6: false`) or ICMPv6. `raw: false` asks for the unprivileged datagram
    /// ping socket (Linux `SOCK_DGRAM`/`IPPROTO_ICMP`), `raw: true` for `SOCK_RAW` (root or
    /// CAP_NET_RAW). Either way the service sends and receives bare ICMP messages: the reactor strips
    /// the IPv4 header a raw socket delivers and reports its TTL in [`RecvMeta`].
    Icmp {
        /// ICMPv6 rather than ICMPv4.
        v6: bool,
        /// A raw socket rather than a datagram ping socket.
        raw: bool,
        /// TTL / hop limit for outgoing packets; `None` keeps the system default.
        ttl: Option<u8>,
    },
}

/// Per-listener limits that the reactor enforces on every connection accepted from it.
#[derive(Clone, Debug)]
pub struct StreamLimits {
    /// At most this many connections from this listener at once. Past it, a new connection is sent
    /// `refusal` (best effort, never blocking) and closed; the service never hears of it.
    pub max_conns: usize,
    /// Sent to a connection refused because `max_conns` is reached.
    pub refusal: Bytes,
    /// Backpressure: while more than this many bytes wait to be written to a connection, the reactor
    /// stops reading from it (its readiness is remembered, so nothing is lost).
    pub pause_reading_above: usize,
    /// Hard output limit: a connection with more than this many bytes waiting is closed with
    /// [`CloseReason::OutputLimit`]. Protects the server from readers that never read.
    pub close_above: usize,
}

impl Default for StreamLimits {
    fn default() -> Self {
        StreamLimits {
            max_conns: 15_000,
            refusal: Bytes::new(),
            pause_reading_above: 64 * 1024,
            close_above: 4 * 1024 * 1024,
        }
    }
}

/// Why a socket was closed, as reported in [`Input::Closed`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CloseReason {
    /// The service asked for it with [`Output::Close`].
    Requested,
    /// The peer reset the connection, or it failed with an I/O error.
    Error(io::ErrorKind),
    /// More output was pending than [`StreamLimits::close_above`] allows: the peer reads too slowly.
    OutputLimit,
    /// A flush on close or at shutdown did not finish in time.
    FlushTimeout,
    /// The server is shutting down.
    Shutdown,
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::Requested => f.write_str("closed"),
            CloseReason::Error(kind) => write!(f, "error: {kind}"),
            CloseReason::OutputLimit => f.write_str("too slow"),
            CloseReason::FlushTimeout => f.write_str("flush timeout"),
            CloseReason::Shutdown => f.write_str("shutdown"),
        }
    }
}

/// Extra facts about a received datagram; all optional, all filled only where the socket knows them.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct RecvMeta {
    /// TTL (IPv4) or hop limit (IPv6) of the received packet.
    pub ttl: Option<u8>,
    /// When the kernel received the packet (`SO_TIMESTAMPNS`), mapped onto the monotonic clock.
    pub rx_time: Option<Instant>,
}

/// A socket the reactor opened for a service.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Opened {
    /// The new socket.
    pub sock: SockId,
    /// The address it is bound to (the actual port when port 0 was asked for).
    pub local: SocketAddr,
}

/// Why an [`Output::Open`] failed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct OpenError {
    /// The error's kind.
    pub kind: io::ErrorKind,
    /// The raw OS error number, when there is one (EPERM vs EACCES matters for ICMP).
    pub errno: Option<i32>,
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.errno {
            Some(n) => write!(f, "{}", io::Error::from_raw_os_error(n)),
            None => write!(f, "{}", self.kind),
        }
    }
}

impl From<&io::Error> for OpenError {
    fn from(e: &io::Error) -> Self {
        OpenError { kind: e.kind(), errno: e.raw_os_error() }
    }
}

/// What the reactor tells a service.
#[derive(Debug)]
pub enum Input<'a> {
    /// The answer to an [`Output::Listen`] or [`Output::Open`] with the same `tag`.
    Opened {
        /// The tag the service chose.
        tag: u64,
        /// The socket, or why it could not be opened.
        result: Result<Opened, OpenError>,
    },
    /// A connection was accepted on one of the service's listeners.
    Accepted {
        /// The listener.
        listener: SockId,
        /// The new connection.
        sock: SockId,
        /// The peer's address.
        peer: SocketAddr,
    },
    /// Bytes read from a connection. They arrive in whatever pieces TCP delivers: framing is the
    /// service's job.
    Stream {
        /// The connection.
        sock: SockId,
        /// The bytes; borrowed from the reactor's read buffer, valid for this call only.
        data: &'a [u8],
    },
    /// The peer finished sending (it shut down its write side). The connection stays open for writing
    /// until the service closes it, usually with `Output::Close { flush: true }`.
    Eof {
        /// The connection.
        sock: SockId,
    },
    /// A datagram arrived on a UDP or ICMP socket.
    Datagram {
        /// The socket.
        sock: SockId,
        /// Sender (for ICMP: the source address, port 0).
        from: SocketAddr,
        /// The payload (for ICMP: the ICMP message, without any IP header).
        data: &'a [u8],
        /// TTL and kernel receive time, where known.
        meta: RecvMeta,
    },
    /// A datagram could not be sent for a reason other than a full socket buffer (which drops the
    /// datagram silently and counts it): e.g. EPERM from a firewall, or an unreachable network.
    SendFailed {
        /// The socket.
        sock: SockId,
        /// The destination.
        to: SocketAddr,
        /// The error.
        error: OpenError,
    },
    /// The socket is gone. Sent exactly once for every socket the service owned.
    Closed {
        /// The socket.
        sock: SockId,
        /// Why.
        reason: CloseReason,
    },
}

/// What a service asks of the reactor.
#[derive(Debug)]
pub enum Output {
    /// Open a public socket: logged as `listening <service>/<tcp|udp> <address>`; if it fails while
    /// the server is starting, the server stops with an error. Answered by [`Input::Opened`].
    Listen {
        /// Echoed back in `Input::Opened`.
        tag: u64,
        /// `TcpListener` or `Udp`.
        kind: SockKind,
        /// Where to bind (port 0: any free port).
        addr: SocketAddr,
        /// Limits for connections accepted from a TCP listener (ignored for UDP).
        limits: StreamLimits,
    },
    /// Open a private socket (a TFTP transfer's own port, an ICMP socket). Answered by
    /// [`Input::Opened`], with an error rather than a stop when it fails.
    Open {
        /// Echoed back in `Input::Opened`.
        tag: u64,
        /// What kind of socket.
        kind: SockKind,
        /// Where to bind (port 0: any free port). Ignored for ICMP.
        addr: SocketAddr,
    },
    /// Queue bytes on a connection. Written at the end of the turn; a `Bytes` shared by many
    /// connections (a chat broadcast) is one allocation.
    Write {
        /// The connection.
        sock: SockId,
        /// The bytes.
        data: Bytes,
    },
    /// Send one datagram. Never blocks: if the socket buffer is full the datagram is dropped and
    /// counted (the protocol's retransmission recovers); other errors come back as
    /// [`Input::SendFailed`].
    SendTo {
        /// The UDP or ICMP socket.
        sock: SockId,
        /// The destination.
        to: SocketAddr,
        /// The datagram.
        data: Bytes,
    },
    /// Close a socket. With `flush`, pending output is written first (for a bounded time).
    Close {
        /// The socket.
        sock: SockId,
        /// Write what is queued before closing.
        flush: bool,
    },
}

/// A protocol, as the reactor sees it. The reactor knows nothing protocol-specific: it moves bytes
/// between sockets and services.
///
/// # Contract
/// - After every `handle_input`, `handle_timeout` or `handle_shutdown`, the reactor calls
///   `poll_output` until it returns `None`, then reads `poll_timeout`.
/// - Answers to outputs (`Opened`, `SendFailed`) arrive as later inputs, never from inside
///   `poll_output`.
/// - `handle_timeout` may be called early or more than once for the same deadline; it must do only
///   what is due at `now`.
/// - `now` never goes backwards. A service never reads the clock itself.
/// - No input from the network may make a service panic or grow its memory without bound.
pub trait Service {
    /// Short name used in logs and counters (`echo`, `chat`, `tftp`...).
    fn name(&self) -> &'static str;
    /// Feed one input.
    fn handle_input(&mut self, now: Instant, input: Input<'_>);
    /// Called when `poll_timeout`'s deadline has passed.
    fn handle_timeout(&mut self, now: Instant);
    /// Take the next output, if any.
    fn poll_output(&mut self) -> Option<Output>;
    /// The earliest deadline at which `handle_timeout` must be called, if any.
    fn poll_timeout(&self) -> Option<Instant>;
    /// The server is shutting down: say goodbye if the protocol has a way to. Every socket will then
    /// be closed with [`CloseReason::Shutdown`] after its output is flushed (for a bounded time).
    fn handle_shutdown(&mut self, _now: Instant) {}
    /// True once the service has nothing more to do (a `netlab ping` run that finished). The reactor
    /// stops when every service is done. Servers never are.
    fn is_done(&self) -> bool {
        false
    }
    /// Protocol-specific counters, logged with the reactor's own at shutdown and on SIGUSR1.
    fn counters(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }
}
