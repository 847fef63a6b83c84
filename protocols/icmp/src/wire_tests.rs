//! Unit tests of the wire formats on literal bytes; compiled only as `#[cfg(test)] mod tests` of wire.rs.

use super::*;

#[test]
fn checksum_rfc1071_example() {
    // RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum (with end-around carry) to ddf2.
    let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
    assert_eq!(checksum(&data), !0xddf2);
    // A message with its checksum in place sums to zero.
    let mut with = data.to_vec();
    with.extend_from_slice(&checksum(&data).to_be_bytes());
    assert_eq!(checksum(&with), 0);
}

#[test]
fn checksum_odd_lengths_and_edges() {
    assert_eq!(checksum(&[]), 0xffff);
    // An odd last byte counts as the high byte of a zero-padded word.
    assert_eq!(checksum(&[0xab]), !0xab00);
    assert_eq!(checksum(&[0x12, 0x34, 0x56]), !(0x1234u16 + 0x5600));
    // Carries fold back in: ffff + 0001 = 1 0000 → 0001.
    assert_eq!(checksum(&[0xff, 0xff, 0x00, 0x01]), !0x0001);
}

/// A real echo reply captured from `ping 127.0.0.1` with iputils (header + 8 payload bytes).
const REPLY_V4: [u8; 16] = [0x00, 0x00, 0x52, 0x8b, 0x12, 0x34, 0x00, 0x01, 1, 2, 3, 4, 5, 6, 7, 8];

fn fix_checksum(b: &mut [u8]) {
    b[2] = 0;
    b[3] = 0;
    let c = checksum(b);
    b[2..4].copy_from_slice(&c.to_be_bytes());
}

#[test]
fn echo_round_trip_v4_and_v6() {
    let payload = [9u8; 11]; // odd length on purpose
    for v6 in [false, true] {
        for reply in [false, true] {
            let e = Echo { v6, reply, ident: 0xbeef, seq: 65535, payload: &payload };
            let mut buf = vec![0xaa; e.buffer_len() + 3];
            assert_eq!(e.emit(&mut buf), 19);
            assert_eq!(buf[19..], [0xaa; 3], "emit writes exactly buffer_len bytes");
            let p = EchoPacket::new_checked(&buf[..19], v6).unwrap();
            assert_eq!((p.is_reply(), p.ident(), p.seq(), p.payload()), (reply, 0xbeef, 65535, &payload[..]));
            assert!(p.checksum_ok());
            if v6 {
                assert_eq!(&buf[2..4], &[0, 0], "the kernel fills ICMPv6 checksums");
            }
        }
    }
}

#[test]
fn echo_view_rejects_bad_input() {
    let mut b = REPLY_V4;
    fix_checksum(&mut b);
    let p = EchoPacket::new_checked(&b, false).unwrap();
    assert!(p.checksum_ok() && p.is_reply());
    assert_eq!((p.ident(), p.seq(), p.len()), (0x1234, 1, 16));
    b[10] ^= 0xff;
    assert!(!EchoPacket::new_checked(&b, false).unwrap().checksum_ok());
    assert_eq!(EchoPacket::new_checked(&b[..7], false).unwrap_err(), WireError::Truncated);
    assert_eq!(EchoPacket::new_checked(&[], false).unwrap_err(), WireError::Truncated);
    assert_eq!(EchoPacket::new_checked(&[3, 1, 0, 0, 0, 0, 0, 0], false).unwrap_err(), WireError::WrongType);
    // ICMPv4 echo reply type means nothing in ICMPv6 and vice versa.
    assert_eq!(EchoPacket::new_checked(&b, true).unwrap_err(), WireError::WrongType);
    assert!(EchoPacket::new_checked(&[129, 0, 0, 0, 0, 1, 0, 2], true).unwrap().is_reply());
}

/// An IPv4 header quoting an ICMP echo request to `dst`, with `options` bytes of options (IHL > 5).
fn ipv4_header(dst: [u8; 4], options: usize) -> Vec<u8> {
    let ihl = (20 + options) / 4;
    let mut h = vec![0x40 | ihl as u8, 0, 0, 84, 0, 0, 0x40, 0, 64, 1, 0, 0, 10, 0, 0, 1];
    h.extend_from_slice(&dst);
    h.extend(std::iter::repeat_n(1u8, options)); // NOP options
    h
}

fn error_v4(ty: u8, code: u8, quote: &[u8]) -> Vec<u8> {
    let mut m = vec![ty, code, 0, 0, 0, 0, 0, 0];
    m.extend_from_slice(quote);
    fix_checksum(&mut m);
    m
}

#[test]
fn v4_errors_quote_our_probe_even_with_ip_options() {
    let probe = {
        let e = Echo { v6: false, reply: false, ident: 7, seq: 42, payload: &[0xc0, 0x0c, 0xee] };
        let mut b = vec![0; e.buffer_len()];
        e.emit(&mut b);
        b
    };
    for options in [0, 4, 40] {
        let mut quote = ipv4_header([192, 0, 2, 9], options);
        quote.extend_from_slice(&probe);
        for (ty, code, kind) in [
            (3, 1, ErrorKind::Unreachable4(1)),
            (3, 13, ErrorKind::Unreachable4(13)),
            (11, 0, ErrorKind::TimeExceeded4(0)),
        ] {
            let msg = error_v4(ty, code, &quote);
            let e = IcmpError::parse(&msg, false).unwrap();
            assert_eq!(e.kind, kind);
            assert_eq!(e.quoted_dst, IpAddr::from([192, 0, 2, 9]));
            assert_eq!((e.quoted_ident, e.quoted_seq, e.quoted_payload), (7, 42, &[0xc0, 0x0c, 0xee][..]));
        }
    }
    // A router that quotes only the IP header and 8 bytes of ICMP (RFC 792) still parses.
    let mut quote = ipv4_header([192, 0, 2, 9], 0);
    quote.extend_from_slice(&probe[..8]);
    assert_eq!(IcmpError::parse(&error_v4(3, 3, &quote), false).unwrap().quoted_payload, &[] as &[u8]);
}

#[test]
fn v4_errors_about_other_traffic_are_not_ours() {
    // Quoting a UDP datagram.
    let mut udp = ipv4_header([192, 0, 2, 9], 0);
    udp[9] = 17;
    udp.extend_from_slice(&[0; 8]);
    assert_eq!(IcmpError::parse(&error_v4(3, 3, &udp), false).unwrap_err(), WireError::NotOurs);
    // Quoting an echo reply rather than a request.
    let mut reply = ipv4_header([192, 0, 2, 9], 0);
    reply.extend_from_slice(&REPLY_V4[..8]);
    assert_eq!(IcmpError::parse(&error_v4(3, 1, &reply), false).unwrap_err(), WireError::NotOurs);
    // Truncated quotes, bad IHL, wrong message types.
    let full = error_v4(3, 1, &ipv4_header([192, 0, 2, 9], 8));
    for n in 0..full.len() {
        assert!(IcmpError::parse(&full[..n], false).is_err(), "{n} bytes");
    }
    let mut bad_ihl = ipv4_header([192, 0, 2, 9], 0);
    bad_ihl[0] = 0x44;
    assert_eq!(IcmpError::parse(&error_v4(3, 1, &bad_ihl), false).unwrap_err(), WireError::BadIpHeader);
    assert_eq!(IcmpError::parse(&error_v4(5, 1, &bad_ihl), false).unwrap_err(), WireError::WrongType);
    assert_eq!(IcmpError::parse(&REPLY_V4, false).unwrap_err(), WireError::WrongType);
}

fn ipv6_quote(next: u8, dst: Ipv6Addr, icmp: &[u8]) -> Vec<u8> {
    let mut h = vec![0x60, 0, 0, 0, 0, icmp.len() as u8, next, 64];
    h.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
    h.extend_from_slice(&dst.octets());
    h.extend_from_slice(icmp);
    h
}

#[test]
fn v6_errors() {
    let dst: Ipv6Addr = "2001:db8::7".parse().unwrap();
    let probe = [128, 0, 0, 0, 0, 9, 0, 3, 0xaa, 0xbb];
    for (ty, code, word, kind) in [
        (1, 3, 0, ErrorKind::Unreachable6(3)),
        (2, 0, 1280, ErrorKind::PacketTooBig6(1280)),
        (3, 0, 0, ErrorKind::TimeExceeded6(0)),
        (4, 1, 40, ErrorKind::ParameterProblem6(1, 40)),
    ] {
        let mut m = vec![ty, code, 0, 0];
        m.extend_from_slice(&u32::to_be_bytes(word));
        m.extend_from_slice(&ipv6_quote(58, dst, &probe));
        let e = IcmpError::parse(&m, true).unwrap();
        assert_eq!((e.kind, e.quoted_dst, e.quoted_ident, e.quoted_seq), (kind, IpAddr::V6(dst), 9, 3));
        assert_eq!(e.quoted_payload, &[0xaa, 0xbb]);
        // ICMPv6 types mean nothing as ICMPv4.
        assert!(IcmpError::parse(&m, false).is_err());
    }
    let mut m = vec![1, 0, 0, 0, 0, 0, 0, 0];
    m.extend_from_slice(&ipv6_quote(17, dst, &probe)); // quotes UDP
    assert_eq!(IcmpError::parse(&m, true).unwrap_err(), WireError::NotOurs);
    assert_eq!(IcmpError::parse(&m[..30], true).unwrap_err(), WireError::Truncated);
}

#[test]
fn descriptions_match_iputils() {
    assert_eq!(ErrorKind::Unreachable4(1).describe(), "Destination Host Unreachable");
    assert_eq!(ErrorKind::Unreachable4(3).describe(), "Destination Port Unreachable");
    assert_eq!(ErrorKind::Unreachable4(10).describe(), "Destination Host Prohibited");
    assert_eq!(ErrorKind::TimeExceeded4(0).describe(), "Time to live exceeded");
    assert_eq!(ErrorKind::Unreachable6(3).describe(), "Destination unreachable: Address unreachable");
    for code in 0..=255u8 {
        assert!(!ErrorKind::Unreachable4(code).describe().is_empty());
        assert!(!ErrorKind::Unreachable6(code).describe().is_empty());
    }
}

#[test]
fn raw_ipv4_reply_with_options() {
    let mut b = REPLY_V4;
    fix_checksum(&mut b);
    for options in [0, 4, 40] {
        let mut packet = ipv4_header([127, 0, 0, 1], options);
        packet[8] = 63;
        let total = (packet.len() + b.len()) as u16;
        packet[2..4].copy_from_slice(&total.to_be_bytes());
        packet.extend_from_slice(&b);
        packet.extend_from_slice(&[0, 0]); // padding past the total length
        let (ttl, icmp) = ipv4_payload(&packet).unwrap();
        assert_eq!((ttl, icmp), (63, &b[..]));
        let echo = EchoPacket::new_checked(icmp, false).unwrap();
        assert!(echo.is_reply() && echo.checksum_ok());
        assert_eq!(ipv4_payload(&packet[..19 + options]).unwrap_err(), WireError::Truncated);
    }
    assert_eq!(ipv4_payload(&[]).unwrap_err(), WireError::Truncated);
    assert_eq!(ipv4_payload(&[0x65; 30]).unwrap_err(), WireError::BadIpHeader);
    assert_eq!(ipv4_payload(&[0x43; 30]).unwrap_err(), WireError::BadIpHeader);
}
