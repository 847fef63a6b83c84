//! ICMP sockets: the unprivileged datagram ping socket or a raw socket, ICMPv4 or ICMPv6.
//!
//! Whatever the kind, the service sends and receives bare ICMP messages. A raw ICMPv4 socket
//! delivers the IP header too: it is stripped here and its TTL reported. The TTL (or hop limit) of
//! other kinds, and the kernel's receive time (`SO_TIMESTAMPNS`), come from control messages.

use std::io;
use std::mem::{size_of, size_of_val, zeroed};
use std::net::SocketAddr;
use std::ops::Range;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant, SystemTime};

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use netlab_core::RecvMeta;

/// Kernel receive buffer for an ICMP socket: many targets answering at once.
const ICMP_BUFFER: usize = 1 << 20;

/// An ICMP socket registered with the poll.
pub struct IcmpSocket {
    inner: Socket,
    v6: bool,
    raw: bool,
}

/// One received ICMP message.
pub struct Received {
    /// Where the ICMP message lies in the buffer (after any IP header).
    pub range: Range<usize>,
    /// The source address (port 0).
    pub from: SocketAddr,
    /// TTL and receive time, where known.
    pub meta: RecvMeta,
}

impl IcmpSocket {
    /// Open an ICMP socket. Errors are returned as they come (EACCES/EPERM mean "not permitted").
    pub fn open(v6: bool, raw: bool, ttl: Option<u8>) -> io::Result<Self> {
        let (domain, proto) =
            if v6 { (Domain::IPV6, Protocol::ICMPV6) } else { (Domain::IPV4, Protocol::ICMPV4) };
        let ty = if raw { Type::RAW } else { Type::DGRAM };
        let inner = Socket::new(domain, ty, Some(proto))?;
        inner.set_nonblocking(true)?;
        let _ = inner.set_recv_buffer_size(ICMP_BUFFER);
        if let Some(ttl) = ttl {
            if v6 {
                inner.set_unicast_hops_v6(u32::from(ttl))?;
            } else {
                inner.set_ttl_v4(u32::from(ttl))?;
            }
        }
        let fd = inner.as_raw_fd();
        // Best effort: without them, RTTs come from the loop's clock and TTLs are unknown.
        let _ = set_int(fd, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 1);
        if !v6 && raw {
            // Likewise for ICMPv4 (Linux ICMP_FILTER): our own requests on loopback, other hosts'
            // pings and redirects no longer wake the loop.
            let _ = set_icmp4_filter(fd, &[0, 3, 11, 12]);
        }
        if v6 && raw {
            // A raw ICMPv6 socket sees all ICMPv6 traffic, neighbour discovery included: let the
            // kernel pass only echo replies and the errors that can quote a probe.
            let _ = set_icmp6_filter(fd, &[1, 2, 3, 4, 129]);
        }
        if v6 {
            let _ = set_int(fd, libc::IPPROTO_IPV6, libc::IPV6_RECVHOPLIMIT, 1);
        } else if !raw {
            let _ = set_int(fd, libc::IPPROTO_IP, libc::IP_RECVTTL, 1);
        }
        if !raw {
            // A datagram ping socket never delivers ICMP errors as messages: ask for them on the
            // error queue, where `recv` turns them back into the messages they came from.
            let _ = if v6 {
                set_int(fd, libc::IPPROTO_IPV6, libc::IPV6_RECVERR, 1)
            } else {
                set_int(fd, libc::IPPROTO_IP, libc::IP_RECVERR, 1)
            };
        }
        Ok(IcmpSocket { inner, v6, raw })
    }

    /// The bound address (for a datagram socket, its port is the ICMP identifier the kernel uses).
    pub fn local_addr(&self) -> SocketAddr {
        let unspecified = if self.v6 { "[::]:0" } else { "0.0.0.0:0" };
        self.inner
            .local_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .unwrap_or_else(|| unspecified.parse().expect("literal"))
    }

    /// Send one ICMP message.
    pub fn send_to(&self, data: &[u8], to: SocketAddr) -> io::Result<usize> {
        let to = SocketAddr::new(to.ip(), 0);
        self.inner.send_to(data, &SockAddr::from(to))
    }

    /// Receive one ICMP message into `buf`. `now`/`wall` are monotonic and wall-clock readings taken
    /// together, used to map the kernel's wall-clock timestamp onto the monotonic clock.
    pub fn recv(&self, buf: &mut [u8], now: Instant, wall: SystemTime) -> io::Result<Received> {
        let mut meta = RecvMeta::default();
        let fd = self.inner.as_raw_fd();
        let result = recv_msg(fd, buf, libc::MSG_DONTWAIT, |level, kind, data| match (level, kind) {
            (libc::SOL_SOCKET, libc::SCM_TIMESTAMPNS) => {
                if let Some(ts) = read_cmsg::<libc::timespec>(data) {
                    let at = SystemTime::UNIX_EPOCH + Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32);
                    // How long ago the kernel took the packet in; never in the future.
                    let age = wall.duration_since(at).unwrap_or(Duration::ZERO);
                    meta.rx_time = Some(now.checked_sub(age).unwrap_or(now));
                }
            }
            (libc::IPPROTO_IP, libc::IP_TTL) | (libc::IPPROTO_IPV6, libc::IPV6_HOPLIMIT) => {
                meta.ttl = read_cmsg::<libc::c_int>(data).and_then(|v| u8::try_from(v).ok());
            }
            _ => {}
        });
        let (n, name) = match result {
            Ok(received) => received,
            Err(err) => {
                let real = !matches!(err.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted);
                if real && !self.raw {
                    // The pending error of an ICMP error message (EHOSTUNREACH...): its details
                    // wait on the error queue. If that fails, report the first error: the reactor
                    // then reads on.
                    if let Some(Ok(r)) = self.recv_error(buf) {
                        return Ok(r);
                    }
                }
                return Err(err);
            }
        };
        let from = to_socket_addr(&name)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no source address"))?;
        let mut range = 0..n;
        if self.raw && !self.v6 {
            // A raw ICMPv4 socket delivers the IP header: strip it (with the protocol crate's checked
            // parser), keep its TTL.
            let (ttl, icmp) = netlab_icmp::wire::ipv4_payload(&buf[..n])
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad IPv4 header"))?;
            let start = icmp.as_ptr() as usize - buf.as_ptr() as usize;
            meta.ttl = Some(ttl);
            range = start..start + icmp.len();
        }
        Ok(Received { range, from: SocketAddr::new(from.ip(), 0), meta })
    }
}

impl IcmpSocket {
    /// Take one entry from the error queue of a datagram ping socket and rebuild the ICMP error
    /// message it came from: error header, a minimal IP header naming the original destination,
    /// then the quoted echo request as the kernel kept it. The service then parses it exactly as
    /// it parses what a raw socket delivers. `None` for local errors (no ICMP behind them).
    fn recv_error(&self, buf: &mut [u8]) -> Option<io::Result<Received>> {
        let hdr = 8 + if self.v6 { 40 } else { 20 };
        if buf.len() <= hdr {
            return None;
        }
        let mut found: Option<(libc::sock_extended_err, libc::sockaddr_storage)> = None;
        let flags = libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT;
        let result = recv_msg(self.inner.as_raw_fd(), &mut buf[hdr..], flags, |level, kind, data| {
            let is_err = (level, kind) == (libc::IPPROTO_IP, libc::IP_RECVERR)
                || (level, kind) == (libc::IPPROTO_IPV6, libc::IPV6_RECVERR);
            if let (true, Some(ee)) = (is_err, read_cmsg::<libc::sock_extended_err>(data)) {
                // The offender's address follows the extended error (SO_EE_OFFENDER).
                let rest = &data[size_of::<libc::sock_extended_err>()..];
                // SAFETY: all-zero bytes are a valid (AF_UNSPEC) sockaddr_storage.
                let mut offender: libc::sockaddr_storage = unsafe { zeroed() };
                let len = rest.len().min(size_of::<libc::sockaddr_storage>());
                // SAFETY: copies `len` bytes, within both the control data and the storage.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        rest.as_ptr(),
                        (&mut offender as *mut libc::sockaddr_storage).cast(),
                        len,
                    )
                };
                found = Some((ee, offender));
            }
        });
        let (n, name) = match result {
            Ok(received) => received,
            Err(e) => return Some(Err(e)),
        };
        let (ee, offender) = found?;
        if ee.ee_origin != libc::SO_EE_ORIGIN_ICMP && ee.ee_origin != libc::SO_EE_ORIGIN_ICMP6 {
            return None;
        }
        let dst = to_socket_addr(&name)?;
        let from = to_socket_addr(&offender).unwrap_or(dst);
        buf[0] = ee.ee_type;
        buf[1] = ee.ee_code;
        buf[2..4].fill(0);
        buf[4..8].copy_from_slice(&ee.ee_info.to_be_bytes());
        if !self.v6 && ee.ee_type == 12 {
            // ICMPv4 Parameter Problem: the kernel keeps the pointer in ee_info's low byte; on the
            // wire it is the first byte after the checksum.
            buf[4] = ee.ee_info as u8;
            buf[5..8].fill(0);
        }
        write_ip_header(&mut buf[8..hdr], dst.ip(), n);
        Some(Ok(Received { range: 0..hdr + n, from, meta: RecvMeta::default() }))
    }
}

/// One `recvmsg(2)` into `buf`: returns the byte count (at most `buf.len()`) and the sender's
/// address, and hands every control message to `on_cmsg(level, type, data)`.
fn recv_msg(
    fd: RawFd,
    buf: &mut [u8],
    flags: libc::c_int,
    mut on_cmsg: impl FnMut(libc::c_int, libc::c_int, &[u8]),
) -> io::Result<(usize, libc::sockaddr_storage)> {
    // SAFETY: recvmsg(2) into buffers we own, with lengths that match them; the kernel writes at
    // most those lengths. Control messages are walked with the CMSG macros, and each one's data is
    // handed out as a slice bounded by its `cmsg_len`, which lies within `control`.
    unsafe {
        let mut name: libc::sockaddr_storage = zeroed();
        let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
        let mut control = [0u64; 32];
        let mut msg: libc::msghdr = zeroed();
        msg.msg_name = (&mut name as *mut libc::sockaddr_storage).cast();
        msg.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = size_of_val(&control) as _;
        let n = libc::recvmsg(fd, &mut msg, flags);
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            let c = &*cmsg;
            let data = libc::CMSG_DATA(cmsg);
            let head = data as usize - cmsg as usize;
            let len = (c.cmsg_len as usize).saturating_sub(head);
            on_cmsg(c.cmsg_level, c.cmsg_type, std::slice::from_raw_parts(data, len));
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
        Ok(((n as usize).min(buf.len()), name))
    }
}

/// A plain-data value at the start of a control message's data, if it is long enough.
fn read_cmsg<T: Copy>(data: &[u8]) -> Option<T> {
    // SAFETY: only used for C structs and integers (valid for any bytes), read unaligned from a
    // slice checked to hold at least `size_of::<T>()` bytes.
    (data.len() >= size_of::<T>()).then(|| unsafe { std::ptr::read_unaligned(data.as_ptr().cast()) })
}

/// A minimal IP header for a rebuilt ICMP error: ICMP inside, to `dst`, `len` bytes after it.
fn write_ip_header(h: &mut [u8], dst: std::net::IpAddr, len: usize) {
    h.fill(0);
    match dst {
        std::net::IpAddr::V4(ip) => {
            h[0] = 0x45;
            h[2..4].copy_from_slice(&u16::try_from(20 + len).unwrap_or(u16::MAX).to_be_bytes());
            h[8] = 64;
            h[9] = 1; // ICMP
            h[16..20].copy_from_slice(&ip.octets());
        }
        std::net::IpAddr::V6(ip) => {
            h[0] = 0x60;
            h[4..6].copy_from_slice(&u16::try_from(len).unwrap_or(u16::MAX).to_be_bytes());
            h[6] = 58; // ICMPv6
            h[7] = 64;
            h[24..40].copy_from_slice(&ip.octets());
        }
    }
}

/// The IP address in a `sockaddr_storage` filled by the kernel.
fn to_socket_addr(ss: &libc::sockaddr_storage) -> Option<SocketAddr> {
    // SAFETY: the family field says which sockaddr type the storage holds; both fit in it.
    unsafe {
        match libc::c_int::from(ss.ss_family) {
            libc::AF_INET => {
                let sin = &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>();
                let ip = std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                Some(SocketAddr::from((ip, 0)))
            }
            libc::AF_INET6 => {
                let sin6 = &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>();
                let ip = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                Some(SocketAddr::V6(std::net::SocketAddrV6::new(ip, 0, 0, sin6.sin6_scope_id)))
            }
            _ => None,
        }
    }
}

/// Install Linux's `ICMP_FILTER` on a raw ICMPv4 socket: pass only the given types (all < 32).
fn set_icmp4_filter(fd: RawFd, pass: &[u8]) -> io::Result<()> {
    /// `ICMP_FILTER` from <linux/icmp.h> (level SOL_RAW); the libc crate lacks it.
    const ICMP_FILTER: libc::c_int = 1;
    // A set bit blocks that type.
    let blocked: u32 = !pass.iter().fold(0u32, |m, &t| m | (1 << t));
    // SAFETY: setsockopt(2) with a pointer to a u32 and its exact size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_RAW,
            ICMP_FILTER,
            (&blocked as *const u32).cast(),
            size_of::<u32>() as libc::socklen_t,
        )
    };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// Install an `ICMP6_FILTER` (RFC 3542) that passes only the given ICMPv6 types.
fn set_icmp6_filter(fd: RawFd, pass: &[u8]) -> io::Result<()> {
    /// `ICMP6_FILTER` from <netinet/icmp6.h> (level IPPROTO_ICMPV6); the libc crate lacks it.
    const ICMP6_FILTER: libc::c_int = 1;
    // A set bit blocks that type (Linux's ICMP6_FILTER_WILLBLOCK convention).
    let mut filter = [u32::MAX; 8];
    for &t in pass {
        filter[usize::from(t >> 5)] &= !(1u32 << (t & 31));
    }
    // SAFETY: setsockopt(2) with a pointer to the 32-byte filter and its exact size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_ICMPV6,
            ICMP6_FILTER,
            filter.as_ptr().cast(),
            size_of_val(&filter) as libc::socklen_t,
        )
    };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

fn set_int(fd: RawFd, level: libc::c_int, name: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: setsockopt(2) with a pointer to a c_int and its exact size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

impl mio::event::Source for IcmpSocket {
    fn register(&mut self, registry: &Registry, token: Token, interests: Interest) -> io::Result<()> {
        SourceFd(&self.inner.as_raw_fd()).register(registry, token, interests)
    }
    fn reregister(&mut self, registry: &Registry, token: Token, interests: Interest) -> io::Result<()> {
        SourceFd(&self.inner.as_raw_fd()).reregister(registry, token, interests)
    }
    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        SourceFd(&self.inner.as_raw_fd()).deregister(registry)
    }
}
