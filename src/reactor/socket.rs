//! The sockets the reactor owns, and how each kind is opened.
//!
//! Everything here is non-blocking and registered with the one `mio::Poll`. ICMP sockets are
//! `socket2` sockets registered through `SourceFd`; see [`super::icmp`] for their receive path.

use std::io;
use std::net::SocketAddr;

use mio::net::{TcpListener, TcpStream, UdpSocket};
use socket2::{Domain, Protocol, SockRef, Socket, Type};

use netlab_core::{SockId, StreamLimits};

use super::outbuf::OutBuf;

/// Pending-connection queue of a listener (the kernel caps it at `net.core.somaxconn`). Large, so
/// that a burst of thousands of connects is not dropped while the loop is busy.
const LISTEN_BACKLOG: i32 = 4096;

/// Kernel buffer size asked for every UDP socket: room for a TFTP window of large blocks or a burst
/// of echo datagrams (the kernel caps it at `net.core.rmem_max`/`wmem_max`).
const UDP_BUFFER: usize = 1 << 20;

/// One slab entry: a socket, the service that owns it, and its remembered readiness.
pub struct Entry {
    /// Index of the owning service.
    pub service: usize,
    /// The socket and its per-kind state.
    pub sock: Sock,
    /// Readable, as far as we know: set by an event, cleared only by `WouldBlock`.
    pub readable: bool,
    /// Writable, as far as we know: starts true, cleared by `WouldBlock`, set by an event.
    pub writable: bool,
    /// Already on the ready list.
    pub queued: bool,
    /// Marked for reaping at the end of the turn (and why).
    pub doomed: Option<netlab_core::CloseReason>,
    /// Opened by `Output::Listen` (logged as `listening ...`).
    pub public: bool,
}

pub enum Sock {
    Listener(Listener),
    Conn(Conn),
    Udp(UdpSocket),
    Icmp(super::icmp::IcmpSocket),
}

/// A TCP listener and its limits.
pub struct Listener {
    pub inner: TcpListener,
    pub limits: StreamLimits,
    /// Live connections accepted from it.
    pub conns: usize,
}

/// One TCP connection.
pub struct Conn {
    pub stream: TcpStream,
    /// The listener it came from (its connection count is decremented on reap).
    pub listener: SockId,
    pub out: OutBuf,
    /// Stop reading above this much pending output.
    pub pause_above: usize,
    /// Close above this much pending output.
    pub close_above: usize,
    /// Reading is paused by backpressure.
    pub paused: bool,
    /// WRITABLE interest is registered (only while output is blocked).
    pub write_interest: bool,
    /// The peer sent EOF.
    pub read_closed: bool,
    /// Closing once the output is flushed (with this reason).
    pub closing: Option<netlab_core::CloseReason>,
    /// On the flush list for this turn.
    pub dirty: bool,
}

impl Entry {
    pub fn new(service: usize, sock: Sock) -> Self {
        Entry { service, sock, readable: false, writable: true, queued: false, doomed: None, public: false }
    }

    /// The entry as a mio source, for (de)registration.
    pub fn source(&mut self) -> &mut dyn mio::event::Source {
        match &mut self.sock {
            Sock::Listener(l) => &mut l.inner,
            Sock::Conn(c) => &mut c.stream,
            Sock::Udp(u) => u,
            Sock::Icmp(i) => i,
        }
    }
}

/// A bound, listening TCP socket with a large backlog, still blocking. The reactor makes it
/// non-blocking; the threaded baseline uses it as it is, so both models meet a connection flood
/// with the same queue.
pub fn bound_tcp_listener(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.bind(&addr.into())?;
    s.listen(LISTEN_BACKLOG)?;
    Ok(s.into())
}

/// A bound UDP socket with large kernel buffers, still blocking (see [`bound_tcp_listener`]).
pub fn bound_udp(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    // Best effort: a smaller buffer only means more drops under load.
    let _ = s.set_recv_buffer_size(UDP_BUFFER);
    let _ = s.set_send_buffer_size(UDP_BUFFER);
    s.bind(&addr.into())?;
    Ok(s.into())
}

/// A non-blocking TCP listener for the poll.
pub fn tcp_listener(addr: SocketAddr) -> io::Result<TcpListener> {
    let l = bound_tcp_listener(addr)?;
    l.set_nonblocking(true)?;
    Ok(TcpListener::from_std(l))
}

/// A non-blocking UDP socket for the poll.
pub fn udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    let u = bound_udp(addr)?;
    u.set_nonblocking(true)?;
    Ok(UdpSocket::from_std(u))
}

/// Set per-connection options on an accepted stream. Failures are harmless and ignored.
pub fn tune_stream(stream: &TcpStream) {
    // Chat lines and echo replies are small and latency-bound: no Nagle delay.
    let _ = stream.set_nodelay(true);
    let _ = SockRef::from(stream).set_linger(None);
}
