//! PingService on the test harness; compiled only as `#[cfg(test)] mod tests` of service.rs.

use std::net::Ipv4Addr;
use std::time::Duration;

use netlab_core::testkit::{Harness, drain};
use netlab_core::{Opened, RecvMeta};

use super::*;
use crate::pinger::PingConfig;

fn service(addrs: &[IpAddr], tag_base: u64) -> PingService {
    let config = PingConfig {
        count: Some(2),
        interval: Duration::from_secs(1),
        spacing: Duration::ZERO,
        timeout: Duration::from_secs(1),
        deadline: None,
        payload_len: 56,
        ident: 7,
        cookie: 42,
    };
    PingService::new(Pinger::new(config, addrs), Some(9), tag_base)
}

fn denied() -> OpenError {
    OpenError { kind: std::io::ErrorKind::PermissionDenied, errno: Some(EACCES) }
}

#[test]
fn falls_back_from_datagram_to_raw_then_pings() {
    let v4 = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut h = Harness::new(service(&[v4], 1 << 40));
    let outs = drain(&mut h.svc);
    let [Output::Open { tag, kind, .. }] = &outs[..] else { panic!("{outs:?}") };
    assert_eq!(*kind, SockKind::Icmp { v6: false, raw: false, ttl: Some(9) });
    assert!(h.svc.owns_tag(*tag) && *tag >= 1 << 40);
    h.svc.handle_input(h.now, Input::Opened { tag: *tag, result: Err(denied()) });
    let outs = drain(&mut h.svc);
    let [Output::Open { tag, kind, .. }] = &outs[..] else { panic!("{outs:?}") };
    assert_eq!(*kind, SockKind::Icmp { v6: false, raw: true, ttl: Some(9) });
    let sock = h.new_sock();
    let local = "0.0.0.0:0".parse().unwrap();
    let outs = h.input(Input::Opened { tag: *tag, result: Ok(Opened { sock, local }) });
    let [Output::SendTo { sock: s, to, data }] = &outs[..] else { panic!("{outs:?}") };
    assert_eq!((*s, to.ip()), (sock, v4));
    assert_eq!(h.svc.is_raw(false), Some(true));

    // A raw socket checks the identifier: a reply with another one is not ours.
    let mut reply = data.to_vec();
    reply[0] = 0;
    reply[2..4].fill(0);
    let c = crate::checksum(&reply);
    reply[2..4].copy_from_slice(&c.to_be_bytes());
    let from = SocketAddr::new(v4, 0);
    h.input(Input::Datagram { sock, from, data: &reply, meta: RecvMeta::default() });
    assert!(matches!(h.svc.poll_event(), Some(Event::Reply { seq: 1, dup: false, .. })));
    // Inputs for sockets that are not ours are ignored.
    let other = h.new_sock();
    h.input(Input::Datagram { sock: other, from, data: &reply, meta: RecvMeta::default() });
    assert_eq!(h.svc.poll_event(), None);
    assert_eq!(h.svc.counters().iter().find(|c| c.0 == "received").unwrap().1, 1);

    let outs = h.fire_next().unwrap();
    assert_eq!(outs.len(), 1, "second probe");
    h.fire_next();
    assert!(h.svc.is_done(), "second probe timed out");
    h.svc.close(h.now);
    assert!(matches!(drain(&mut h.svc)[..], [Output::Close { sock: s, .. }] if s == sock));
}

#[test]
fn neither_socket_kind_is_a_clear_failure() {
    let v6: IpAddr = "::1".parse().unwrap();
    let mut h = Harness::new(service(&[v6], 0));
    for raw in [false, true] {
        let outs = drain(&mut h.svc);
        let [Output::Open { tag, kind, .. }] = &outs[..] else { panic!("{outs:?}") };
        assert_eq!(*kind, SockKind::Icmp { v6: true, raw, ttl: Some(9) });
        h.svc.handle_input(h.now, Input::Opened { tag: *tag, result: Err(denied()) });
    }
    let f = h.svc.failure().expect("failure");
    assert!(f.v6 && f.not_permitted());
    assert!(h.svc.is_done());
    assert_eq!(h.svc.poll_timeout(), None);
}

#[test]
fn hostile_bytes_never_panic_or_count() {
    let target = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut h = Harness::new(service(&[target], 0));
    let outs = drain(&mut h.svc);
    let [Output::Open { tag, .. }] = &outs[..] else { panic!() };
    let sock = h.new_sock();
    let local = "0.0.0.0:0".parse().unwrap();
    h.input(Input::Opened { tag: *tag, result: Ok(Opened { sock, local }) });
    // A seeded generator: message types that matter, random lengths and bytes.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut buf = [0u8; 200];
    for _ in 0..20_000 {
        let len = (next() % 200) as usize;
        buf.iter_mut().for_each(|b| *b = next() as u8);
        buf[0] = [0, 3, 8, 11, 12, 0x45][(next() % 6) as usize];
        if buf[0] == 3 || buf[0] == 11 {
            buf[8] = 0x40 | (next() % 16) as u8;
        }
        let from = SocketAddr::new(target, 0);
        h.input(Input::Datagram { sock, from, data: &buf[..len], meta: RecvMeta::default() });
    }
    let s = &h.svc.pinger().targets()[0].stats;
    assert_eq!((s.received, s.dups, s.errors), (0, 0, 0), "random bytes never carry our cookie");
}
