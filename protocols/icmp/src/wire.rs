//! ICMP wire formats: the RFC 1071 checksum, echo request/reply (checked view + emit-able
//! representation), and the error messages that quote one of our probes.
//!
//! Every parser takes untrusted bytes, never panics and never allocates; every emitter writes exactly
//! [`Echo::buffer_len`] bytes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// ICMPv4 message types we use.
pub const V4_ECHO_REPLY: u8 = 0;
pub const V4_DEST_UNREACHABLE: u8 = 3;
pub const V4_ECHO_REQUEST: u8 = 8;
pub const V4_TIME_EXCEEDED: u8 = 11;
pub const V4_PARAMETER_PROBLEM: u8 = 12;
/// ICMPv6 message types we use.
pub const V6_DEST_UNREACHABLE: u8 = 1;
pub const V6_PACKET_TOO_BIG: u8 = 2;
pub const V6_TIME_EXCEEDED: u8 = 3;
pub const V6_PARAMETER_PROBLEM: u8 = 4;
pub const V6_ECHO_REQUEST: u8 = 128;
pub const V6_ECHO_REPLY: u8 = 129;

/// Length of the ICMP echo header (type, code, checksum, identifier, sequence).
pub const ECHO_HEADER_LEN: usize = 8;
/// IP protocol number of ICMP (in a quoted IPv4 header) and next-header value of ICMPv6.
const PROTO_ICMP: u8 = 1;
const NEXT_HEADER_ICMPV6: u8 = 58;
/// Length of the fixed IPv6 header.
const IPV6_HEADER_LEN: usize = 40;

/// Why bytes are not the message we looked for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum WireError {
    /// Shorter than the header it claims to be.
    Truncated,
    /// Not an echo request/reply (or not an error message, for [`IcmpError::parse`]).
    WrongType,
    /// The quoted packet is not an ICMP echo request of our address family.
    NotOurs,
    /// An IPv4 header with a version other than 4 or an IHL below 5.
    BadIpHeader,
}

/// RFC 1071 Internet checksum of `data`: the one's complement of the one's complement sum of its
/// 16-bit big-endian words, an odd last byte padded with zero. A message carrying a correct checksum
/// sums to `0` under this function.
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut words = data.chunks_exact(2);
    for w in &mut words {
        sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        sum += u32::from(*last) << 8;
    }
    // Fold the carries back in (twice is always enough for a 32-bit sum of 16-bit words, but a loop
    // states the intent).
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// A checked view of an ICMP echo request or reply (v4 or v6) over untrusted bytes.
#[derive(Clone, Copy, Debug)]
pub struct EchoPacket<'a> {
    bytes: &'a [u8],
    v6: bool,
}

impl<'a> EchoPacket<'a> {
    /// Check that `bytes` hold a whole echo header of an echo request or reply. The checksum is not
    /// checked here (see [`EchoPacket::checksum_ok`]): a damaged reply is still worth reporting.
    pub fn new_checked(bytes: &'a [u8], v6: bool) -> Result<Self, WireError> {
        let ty = *bytes.first().ok_or(WireError::Truncated)?;
        let echo = if v6 { [V6_ECHO_REQUEST, V6_ECHO_REPLY] } else { [V4_ECHO_REQUEST, V4_ECHO_REPLY] };
        if !echo.contains(&ty) {
            return Err(WireError::WrongType);
        }
        if bytes.len() < ECHO_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        Ok(EchoPacket { bytes, v6 })
    }

    /// A reply (rather than a request).
    pub fn is_reply(&self) -> bool {
        self.bytes[0] == if self.v6 { V6_ECHO_REPLY } else { V4_ECHO_REPLY }
    }
    /// The code byte (0 for a well-formed echo).
    pub fn code(&self) -> u8 {
        self.bytes[1]
    }
    /// The identifier.
    pub fn ident(&self) -> u16 {
        u16::from_be_bytes([self.bytes[4], self.bytes[5]])
    }
    /// The sequence number.
    pub fn seq(&self) -> u16 {
        u16::from_be_bytes([self.bytes[6], self.bytes[7]])
    }
    /// The data after the header.
    pub fn payload(&self) -> &'a [u8] {
        &self.bytes[ECHO_HEADER_LEN..]
    }
    /// Length of the whole ICMP message.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }
    /// Never true: a checked view holds at least a header.
    pub fn is_empty(&self) -> bool {
        false
    }
    /// True if the ICMPv4 checksum is right. ICMPv6 checksums cover a pseudo-header with addresses
    /// we do not see; the kernel verifies them before any ICMPv6 socket gets the packet, so this is
    /// always true for v6.
    pub fn checksum_ok(&self) -> bool {
        self.v6 || checksum(self.bytes) == 0
    }
}

/// An echo request or reply to emit.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Echo<'a> {
    /// ICMPv6 rather than ICMPv4.
    pub v6: bool,
    /// A reply rather than a request.
    pub reply: bool,
    /// Identifier (a datagram ping socket replaces it with its own).
    pub ident: u16,
    /// Sequence number.
    pub seq: u16,
    /// Data after the header.
    pub payload: &'a [u8],
}

impl Echo<'_> {
    /// Exact number of bytes [`Echo::emit`] writes.
    pub fn buffer_len(&self) -> usize {
        ECHO_HEADER_LEN + self.payload.len()
    }

    /// Write the message into `buf[..self.buffer_len()]`; returns that length. ICMPv4 gets its
    /// checksum; ICMPv6 leaves it zero because the kernel fills it in (it alone knows the source
    /// address of the pseudo-header). Panics if `buf` is shorter than `buffer_len()` (a caller bug).
    pub fn emit(&self, buf: &mut [u8]) -> usize {
        let n = self.buffer_len();
        let buf = &mut buf[..n];
        buf[0] = match (self.v6, self.reply) {
            (false, false) => V4_ECHO_REQUEST,
            (false, true) => V4_ECHO_REPLY,
            (true, false) => V6_ECHO_REQUEST,
            (true, true) => V6_ECHO_REPLY,
        };
        buf[1] = 0;
        buf[2..4].fill(0);
        buf[4..6].copy_from_slice(&self.ident.to_be_bytes());
        buf[6..8].copy_from_slice(&self.seq.to_be_bytes());
        buf[ECHO_HEADER_LEN..].copy_from_slice(self.payload);
        if !self.v6 {
            let sum = checksum(buf);
            buf[2..4].copy_from_slice(&sum.to_be_bytes());
        }
        n
    }
}

/// What an ICMP error message says went wrong.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ErrorKind {
    /// ICMPv4 type 3 with its code (0..=15; others kept as they come).
    Unreachable4(u8),
    /// ICMPv4 type 11 with its code (0: TTL exceeded in transit, 1: reassembly time exceeded).
    TimeExceeded4(u8),
    /// ICMPv4 type 12: parameter problem, with the pointer byte.
    ParameterProblem4(u8),
    /// ICMPv6 type 1 with its code (0..=6).
    Unreachable6(u8),
    /// ICMPv6 type 2, with the MTU.
    PacketTooBig6(u32),
    /// ICMPv6 type 3 with its code (0: hop limit, 1: reassembly).
    TimeExceeded6(u8),
    /// ICMPv6 type 4 with its code and pointer.
    ParameterProblem6(u8, u32),
}

impl ErrorKind {
    /// The text iputils prints after `From X icmp_seq=N `.
    pub fn describe(&self) -> String {
        match *self {
            ErrorKind::Unreachable4(code) => match code {
                0 => "Destination Net Unreachable".into(),
                1 => "Destination Host Unreachable".into(),
                2 => "Destination Protocol Unreachable".into(),
                3 => "Destination Port Unreachable".into(),
                4 => "Frag needed and DF set".into(),
                5 => "Source Route Failed".into(),
                6 => "Destination Net Unknown".into(),
                7 => "Destination Host Unknown".into(),
                8 => "Source Host Isolated".into(),
                9 => "Destination Net Prohibited".into(),
                10 => "Destination Host Prohibited".into(),
                11 => "Destination Net Unreachable for Type of Service".into(),
                12 => "Destination Host Unreachable for Type of Service".into(),
                13 => "Packet filtered".into(),
                14 => "Precedence Violation".into(),
                15 => "Precedence Cutoff".into(),
                c => format!("Dest Unreachable, Bad Code: {c}"),
            },
            ErrorKind::TimeExceeded4(0) => "Time to live exceeded".into(),
            ErrorKind::TimeExceeded4(1) => "Frag reassembly time exceeded".into(),
            ErrorKind::TimeExceeded4(c) => format!("Time exceeded, Bad Code: {c}"),
            ErrorKind::ParameterProblem4(p) => format!("Parameter problem: pointer = {p}"),
            ErrorKind::Unreachable6(code) => match code {
                0 => "Destination unreachable: No route".into(),
                1 => "Destination unreachable: Administratively prohibited".into(),
                2 => "Destination unreachable: Beyond scope of source address".into(),
                3 => "Destination unreachable: Address unreachable".into(),
                4 => "Destination unreachable: Port unreachable".into(),
                5 => "Destination unreachable: Source address failed ingress/egress policy".into(),
                6 => "Destination unreachable: Reject route to destination".into(),
                c => format!("Destination unreachable: Unknown code {c}"),
            },
            ErrorKind::PacketTooBig6(mtu) => format!("Packet too big: mtu={mtu}"),
            ErrorKind::TimeExceeded6(0) => "Time exceeded: Hop limit".into(),
            ErrorKind::TimeExceeded6(1) => "Time exceeded: Defragmentation failure".into(),
            ErrorKind::TimeExceeded6(c) => format!("Time exceeded: code {c}"),
            ErrorKind::ParameterProblem6(c, p) => format!("Parameter problem: code {c} at {p}"),
        }
    }
}

/// An ICMP error message that quotes an ICMP echo request: what went wrong, and the probe it was
/// about (so that it can be matched to one of ours, or ignored as someone else's).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct IcmpError<'a> {
    /// What went wrong.
    pub kind: ErrorKind,
    /// Destination of the quoted packet.
    pub quoted_dst: IpAddr,
    /// Identifier of the quoted echo request.
    pub quoted_ident: u16,
    /// Sequence number of the quoted echo request.
    pub quoted_seq: u16,
    /// Whatever of the quoted echo payload survived (routers may quote only 8 bytes of ICMP).
    pub quoted_payload: &'a [u8],
}

impl<'a> IcmpError<'a> {
    /// Parse an error message that quotes an ICMP echo request. `Err(WrongType)` for any other
    /// message type, `Err(NotOurs)` when the quoted packet is not an echo request of this family.
    pub fn parse(bytes: &'a [u8], v6: bool) -> Result<Self, WireError> {
        let ty = *bytes.first().ok_or(WireError::Truncated)?;
        if bytes.len() < 8 {
            return Err(WireError::Truncated);
        }
        let code = bytes[1];
        let word = u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
        let kind = match (v6, ty) {
            (false, V4_DEST_UNREACHABLE) => ErrorKind::Unreachable4(code),
            (false, V4_TIME_EXCEEDED) => ErrorKind::TimeExceeded4(code),
            (false, V4_PARAMETER_PROBLEM) => ErrorKind::ParameterProblem4(bytes[4]),
            (true, V6_DEST_UNREACHABLE) => ErrorKind::Unreachable6(code),
            (true, V6_PACKET_TOO_BIG) => ErrorKind::PacketTooBig6(word),
            (true, V6_TIME_EXCEEDED) => ErrorKind::TimeExceeded6(code),
            (true, V6_PARAMETER_PROBLEM) => ErrorKind::ParameterProblem6(code, word),
            _ => return Err(WireError::WrongType),
        };
        let quote = &bytes[8..];
        let (quoted_dst, icmp) = if v6 { quoted_ipv6(quote)? } else { quoted_ipv4(quote)? };
        if icmp.len() < ECHO_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let request = if v6 { V6_ECHO_REQUEST } else { V4_ECHO_REQUEST };
        if icmp[0] != request {
            return Err(WireError::NotOurs);
        }
        Ok(IcmpError {
            kind,
            quoted_dst,
            quoted_ident: u16::from_be_bytes([icmp[4], icmp[5]]),
            quoted_seq: u16::from_be_bytes([icmp[6], icmp[7]]),
            quoted_payload: &icmp[ECHO_HEADER_LEN..],
        })
    }
}

/// The TTL and the payload of a whole IPv4 packet, as a raw ICMPv4 socket delivers it. The header
/// may carry options (IHL > 5); bytes past the header's total length (link padding) are dropped.
pub fn ipv4_payload(packet: &[u8]) -> Result<(u8, &[u8]), WireError> {
    let first = *packet.first().ok_or(WireError::Truncated)?;
    let ihl = usize::from(first & 0x0f) * 4;
    if first >> 4 != 4 || ihl < 20 {
        return Err(WireError::BadIpHeader);
    }
    if packet.len() < ihl {
        return Err(WireError::Truncated);
    }
    let total = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
    // Linux hands raw sockets the total length as sent; a smaller one than the header is bogus.
    let end = if total >= ihl { total.min(packet.len()) } else { packet.len() };
    Ok((packet[8], &packet[ihl..end]))
}

/// The destination and the ICMP bytes of a quoted IPv4 packet (whose header may carry options).
fn quoted_ipv4(quote: &[u8]) -> Result<(IpAddr, &[u8]), WireError> {
    let first = *quote.first().ok_or(WireError::Truncated)?;
    let ihl = usize::from(first & 0x0f) * 4;
    if first >> 4 != 4 || ihl < 20 {
        return Err(WireError::BadIpHeader);
    }
    if quote.len() < ihl {
        return Err(WireError::Truncated);
    }
    if quote[9] != PROTO_ICMP {
        return Err(WireError::NotOurs);
    }
    let dst = Ipv4Addr::new(quote[16], quote[17], quote[18], quote[19]);
    Ok((IpAddr::V4(dst), &quote[ihl..]))
}

/// The destination and the ICMPv6 bytes of a quoted IPv6 packet. Extension headers are not walked:
/// our probes carry none, so a quote with any is someone else's.
fn quoted_ipv6(quote: &[u8]) -> Result<(IpAddr, &[u8]), WireError> {
    if quote.len() < IPV6_HEADER_LEN {
        return Err(WireError::Truncated);
    }
    if quote[0] >> 4 != 6 {
        return Err(WireError::BadIpHeader);
    }
    if quote[6] != NEXT_HEADER_ICMPV6 {
        return Err(WireError::NotOurs);
    }
    let mut dst = [0u8; 16];
    dst.copy_from_slice(&quote[24..40]);
    Ok((IpAddr::V6(Ipv6Addr::from(dst)), &quote[IPV6_HEADER_LEN..]))
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
