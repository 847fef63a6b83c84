//! Unit tests of the pinger on virtual time; compiled only as `#[cfg(test)] mod tests` of pinger.rs.

use std::net::Ipv4Addr;
use std::time::Duration;

use super::*;
use crate::wire::{ErrorKind, checksum};

const COOKIE: u64 = 0x0123_4567_89ab_cdef;
const S: Duration = Duration::from_secs(1);

fn config(count: Option<u64>) -> PingConfig {
    PingConfig {
        count,
        interval: S,
        spacing: Duration::from_millis(1),
        timeout: 5 * S,
        deadline: None,
        payload_len: 56,
        ident: 0x4242,
        cookie: COOKIE,
    }
}

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// The echo reply a well-behaved host sends to `request`.
fn reply_to(request: &[u8]) -> Vec<u8> {
    let mut r = request.to_vec();
    r[0] = if r[0] == 8 { 0 } else { 129 };
    if r[0] == 0 {
        r[2..4].fill(0);
        let c = checksum(&r);
        r[2..4].copy_from_slice(&c.to_be_bytes());
    }
    r
}

fn transmits(p: &mut Pinger) -> Vec<Transmit> {
    std::iter::from_fn(|| p.poll_transmit()).collect()
}
fn events(p: &mut Pinger) -> Vec<Event> {
    std::iter::from_fn(|| p.poll_event()).collect()
}
fn meta(ttl: u8) -> RecvMeta {
    RecvMeta { ttl: Some(ttl), rx_time: None }
}

#[test]
fn three_probes_three_replies() {
    let t0 = Instant::now();
    let mut p = Pinger::new(config(Some(3)), &[ip(1)]);
    p.start(t0);
    for i in 0..3u16 {
        let now = t0 + S * u32::from(i);
        p.handle_timeout(now);
        let tx = transmits(&mut p);
        assert_eq!(tx.len(), 1);
        assert_eq!(tx[0].data.len(), 64);
        let rx = now + Duration::from_micros(40 + u64::from(i) * 10);
        assert_eq!(p.handle_icmp(rx, ip(1), &reply_to(&tx[0].data), meta(64)), Claim::Ours);
        let ev = events(&mut p);
        let rtt = Duration::from_micros(40 + u64::from(i) * 10);
        assert_eq!(ev, [Event::Reply { target: 0, seq: i + 1, bytes: 64, ttl: Some(64), rtt, dup: false }]);
    }
    assert!(p.is_done(), "done as soon as the last reply is in");
    let s = &p.targets()[0].stats;
    assert_eq!((s.sent, s.received, s.dups), (3, 3, 0));
    let r = s.rtt().unwrap();
    assert_eq!((r.min_us, r.avg_us, r.max_us, r.mdev_us), (40, 50, 60, 8));
    assert_eq!(p.poll_timeout(), None);
}

#[test]
fn duplicates_damage_and_strangers() {
    let t0 = Instant::now();
    let mut p = Pinger::new(config(Some(2)), &[ip(1)]);
    p.start(t0);
    let tx = transmits(&mut p).remove(0);
    let reply = reply_to(&tx.data);
    assert_eq!(p.handle_icmp(t0, ip(1), &reply, meta(64)), Claim::Ours);
    assert_eq!(p.handle_icmp(t0, ip(1), &reply, meta(64)), Claim::Ours);
    let ev = events(&mut p);
    assert!(matches!(ev[1], Event::Reply { dup: true, seq: 1, .. }), "{ev:?}");

    // Our own request seen on loopback, a reply from the wrong host, another pinger's reply.
    assert_eq!(p.handle_icmp(t0, ip(1), &tx.data, meta(64)), Claim::NotOurs);
    assert_eq!(p.handle_icmp(t0, ip(2), &reply, meta(64)), Claim::NotOurs);
    let mut other = Pinger::new(PingConfig { cookie: 99, ..config(Some(1)) }, &[ip(1)]);
    other.start(t0);
    let theirs = reply_to(&transmits(&mut other)[0].data);
    assert_eq!(p.handle_icmp(t0, ip(1), &theirs, meta(64)), Claim::NotOurs);
    // Garbage of every length.
    for n in 0..reply.len() {
        assert_eq!(p.handle_icmp(t0, ip(1), &reply[..n.min(7)], meta(64)), Claim::NotOurs);
    }

    p.handle_timeout(t0 + S);
    let tx2 = transmits(&mut p).remove(0);
    let mut bad_sum = reply_to(&tx2.data);
    bad_sum[2] ^= 1;
    assert_eq!(p.handle_icmp(t0 + S, ip(1), &bad_sum, meta(64)), Claim::Ours);
    let mut bad_data = reply_to(&tx2.data);
    bad_data[8 + 30] ^= 0xff;
    bad_data[2..4].fill(0);
    let c = checksum(&bad_data);
    bad_data[2..4].copy_from_slice(&c.to_be_bytes());
    assert_eq!(p.handle_icmp(t0 + S, ip(1), &bad_data, meta(64)), Claim::Ours);
    let ev = events(&mut p);
    assert_eq!(ev[0], Event::Damaged { target: 0, seq: 2, bytes: 64, damage: Damage::BadChecksum });
    let wrong = Damage::WrongData { offset: 30, expected: 30, got: !30 };
    assert_eq!(ev[1], Event::Damaged { target: 0, seq: 2, bytes: 64, damage: wrong });
    let s = &p.targets()[0].stats;
    assert_eq!((s.sent, s.received, s.dups, s.damaged), (2, 1, 1, 2));
    assert!(!p.is_done(), "a damaged reply does not answer the probe");
    p.handle_timeout(t0 + 6 * S);
    assert_eq!(events(&mut p), [Event::Timeout { target: 0, seq: 2 }]);
    assert!(p.is_done());
}

#[test]
fn errors_quoting_our_probe_or_someone_elses() {
    let t0 = Instant::now();
    let mut p = Pinger::new(config(Some(1)), &[ip(9)]);
    p.start(t0);
    let tx = transmits(&mut p).remove(0);
    let error = |probe: &[u8], dst: u8| {
        let mut m = vec![3, 1, 0, 0, 0, 0, 0, 0, 0x46, 0, 0, 88, 0, 0, 0, 0, 64, 1, 0, 0, 127, 0, 0, 1];
        m.extend_from_slice(&[127, 0, 0, dst, 1, 1, 1, 1]); // dst, then 4 bytes of options
        m.extend_from_slice(&probe[..8 + 8]); // a router quoting 8 payload bytes
        m
    };
    let mut other = Pinger::new(PingConfig { cookie: 1, ..config(Some(1)) }, &[ip(9)]);
    other.start(t0);
    let theirs = transmits(&mut other).remove(0);
    assert_eq!(p.handle_icmp(t0, ip(254), &error(&theirs.data, 9), meta(64)), Claim::NotOurs);
    assert_eq!(p.handle_icmp(t0, ip(254), &error(&tx.data, 8), meta(64)), Claim::NotOurs);
    assert_eq!(p.handle_icmp(t0, ip(254), &error(&tx.data, 9), meta(64)), Claim::Ours);
    let kind = ErrorKind::Unreachable4(1);
    assert_eq!(events(&mut p), [Event::Error { target: 0, seq: 1, from: ip(254), kind }]);
    assert_eq!(p.targets()[0].stats.errors, 1);
    assert!(p.is_done(), "an error settles the probe");
}

#[test]
fn identifier_is_checked_on_raw_sockets_only() {
    let t0 = Instant::now();
    let mut p = Pinger::new(config(Some(2)), &[ip(1)]);
    p.start(t0);
    let mut r = reply_to(&transmits(&mut p)[0].data);
    r[4] = 0x77; // a datagram socket's kernel-chosen identifier
    r[2..4].fill(0);
    let c = checksum(&r);
    r[2..4].copy_from_slice(&c.to_be_bytes());
    p.set_check_ident(false, true);
    assert_eq!(p.handle_icmp(t0, ip(1), &r, meta(64)), Claim::NotOurs);
    p.set_check_ident(false, false);
    assert_eq!(p.handle_icmp(t0, ip(1), &r, meta(64)), Claim::Ours);
}

#[test]
fn no_cliff_when_the_sequence_wraps() {
    let t0 = Instant::now();
    let n = 70_000u64;
    let cfg = PingConfig { interval: Duration::from_millis(1), payload_len: 16, ..config(Some(n)) };
    let mut p = Pinger::new(cfg, &[ip(1)]);
    p.start(t0);
    let mut now = t0;
    let mut last_seq = 0;
    while !p.is_done() {
        for tx in transmits(&mut p) {
            assert_eq!(p.handle_icmp(now, ip(1), &reply_to(&tx.data), meta(64)), Claim::Ours);
        }
        for ev in events(&mut p) {
            let Event::Reply { seq, dup: false, .. } = ev else { panic!("{ev:?}") };
            last_seq = seq;
        }
        now = p.poll_timeout().unwrap_or(now);
        p.handle_timeout(now);
    }
    let s = &p.targets()[0].stats;
    assert_eq!((s.sent, s.received, s.dups, s.damaged), (n, n, 0, 0));
    assert_eq!(last_seq, n as u16);
}

#[test]
fn pending_timeouts_are_bounded_by_the_window_not_by_the_timeout() {
    let t0 = Instant::now();
    // -i 1ms -W 3600: without a bound, every probe of the last hour would wait in the queue.
    let cfg = PingConfig {
        interval: Duration::from_millis(1),
        timeout: Duration::from_secs(3600),
        payload_len: 16,
        ..config(Some(20_000))
    };
    let mut p = Pinger::new(cfg, &[ip(1)]);
    p.start(t0);
    let mut now = t0;
    while p.targets()[0].stats.sent < 20_000 {
        for tx in transmits(&mut p) {
            p.handle_icmp(now, ip(1), &reply_to(&tx.data), meta(64));
        }
        events(&mut p);
        assert!(p.timeouts.len() <= MAX_WINDOW + 1, "{} timeouts queued", p.timeouts.len());
        now = p.poll_timeout().unwrap_or(now);
        p.handle_timeout(now);
    }
}

#[test]
fn timeouts_deadline_and_many_targets() {
    let t0 = Instant::now();
    let cfg = PingConfig { deadline: Some(Duration::from_millis(2500)), timeout: S, ..config(Some(10)) };
    let targets: Vec<IpAddr> = (1..=50).map(ip).chain([ip(1)]).collect();
    let mut p = Pinger::new(cfg, &targets);
    assert_eq!(p.targets().len(), 50, "a repeated address is pinged once");
    p.start(t0);
    let first = transmits(&mut p);
    assert_eq!(first.len(), 1, "targets are spaced out");
    let mut sent = first.len();
    while let Some(at) = p.poll_timeout() {
        p.handle_timeout(at);
        let tx = transmits(&mut p);
        sent += tx.len();
        // Target 7 answers everything; the others are silent.
        for t in tx.iter().filter(|t| t.target == 7) {
            p.handle_icmp(at, t.to, &reply_to(&t.data), meta(64));
        }
    }
    assert!(p.is_done());
    assert_eq!(p.span().1, Some(t0 + Duration::from_millis(2500)), "ends at the deadline");
    assert_eq!(sent, 150, "three rounds in 2.5 s");
    assert_eq!(p.targets()[7].stats.received, 3);
    let timeouts = events(&mut p).iter().filter(|e| matches!(e, Event::Timeout { .. })).count();
    assert_eq!(timeouts, 49 * 2, "the third round was cut off by the deadline");
}

#[test]
fn send_failures_and_stop() {
    let t0 = Instant::now();
    let mut p = Pinger::new(config(None), &[ip(1)]);
    p.start(t0);
    transmits(&mut p);
    p.send_failed(t0, ip(1), "Operation not permitted".into());
    let error = "Operation not permitted".to_string();
    assert_eq!(events(&mut p), [Event::SendFailed { target: 0, seq: 1, error }]);
    p.handle_timeout(t0 + S);
    assert_eq!(transmits(&mut p).len(), 1, "a send error is not the end of the run");
    assert!(!p.is_done());
    p.stop(t0 + S);
    assert!(p.is_done());
    assert_eq!(p.poll_timeout(), None);
    let s = &p.targets()[0].stats;
    assert_eq!((s.sent, s.errors, s.received), (2, 1, 0));
}

#[test]
fn the_window_is_bounded() {
    let t0 = Instant::now();
    let cfg = PingConfig { interval: Duration::from_millis(1), timeout: 60 * S, ..config(Some(5000)) };
    let mut p = Pinger::new(cfg, &[ip(1)]);
    p.start(t0);
    let mut first = None;
    for _ in 0..MAX_WINDOW + 10 {
        let tx = transmits(&mut p);
        first = first.or(tx.first().cloned());
        let at = p.poll_timeout().unwrap();
        p.handle_timeout(at);
    }
    // The oldest probes were pushed out of the window: lost, and their late replies not ours.
    let ev = events(&mut p);
    assert!(ev.len() >= 10 && ev[0] == Event::Timeout { target: 0, seq: 1 }, "{:?}", &ev[..3]);
    let late = reply_to(&first.unwrap().data);
    assert_eq!(p.handle_icmp(t0, ip(1), &late, meta(64)), Claim::NotOurs);
    assert!(p.targets()[0].window.len() <= MAX_WINDOW);
}

#[test]
fn huge_durations_do_not_overflow() {
    let t0 = Instant::now();
    let cfg = PingConfig {
        interval: Duration::MAX,
        spacing: Duration::MAX,
        timeout: Duration::MAX,
        deadline: Some(Duration::MAX),
        ..config(Some(3))
    };
    let mut p = Pinger::new(cfg, &[ip(1), ip(2)]);
    p.start(t0);
    assert_eq!(transmits(&mut p).len(), 1);
    let at = p.poll_timeout().unwrap();
    assert_eq!(at, t0 + MAX_DURATION);
    p.handle_timeout(at);
    assert!(p.is_done(), "the (clamped) deadline came first");
}
