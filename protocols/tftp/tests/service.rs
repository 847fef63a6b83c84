//! The service on virtual time through `netlab_core::testkit::Harness`: the request rules, TIDs,
//! caps, retries and socket bookkeeping, packet by packet.

use std::net::SocketAddr;
use std::time::Duration;

use netlab_core::testkit::Harness;
use netlab_core::{Input, Output, RecvMeta, Service, SockId};
use netlab_tftp::{Config, MemFs, Packet, TftpService};

const PEER: &str = "127.0.0.1:5000";

fn harness(upload: bool) -> (Harness<TftpService<MemFs>>, SockId, MemFs) {
    let fs = MemFs::default();
    fs.insert("hello.txt", b"hello world".to_vec());
    fs.insert("big", vec![7u8; 2000]);
    let mut cfg = Config::new("127.0.0.1:69".parse().unwrap());
    cfg.allow_upload = upload;
    cfg.max_retries = 2;
    cfg.max_per_client = 2;
    let mut h = Harness::new(TftpService::new(cfg, fs.clone()));
    assert!(h.start().is_empty());
    // The harness numbers sockets from 2: the listener is the first.
    let listener = SockId { index: 2, generation: 0 };
    (h, listener, fs)
}

fn dgram(h: &mut Harness<TftpService<MemFs>>, sock: SockId, from: &str, data: &[u8]) -> Vec<Output> {
    let from: SocketAddr = from.parse().unwrap();
    h.input(Input::Datagram { sock, from, data, meta: RecvMeta::default() })
}

/// The packets sent, as (socket, destination, bytes).
fn sent(outs: &[Output]) -> Vec<(SockId, SocketAddr, Vec<u8>)> {
    outs.iter()
        .filter_map(|o| match o {
            Output::SendTo { sock, to, data } => Some((*sock, *to, data.to_vec())),
            _ => None,
        })
        .collect()
}

fn closes(outs: &[Output]) -> usize {
    outs.iter().filter(|o| matches!(o, Output::Close { .. })).count()
}

#[test]
fn requests_from_privileged_ports_are_dropped() {
    let (mut h, l, _) = harness(false);
    assert!(dgram(&mut h, l, "127.0.0.1:7", b"\x00\x01big\x00octet\x00").is_empty());
    assert!(dgram(&mut h, l, "127.0.0.1:19", b"\x00\x09junk").is_empty());
    assert_eq!(h.svc.transfers(), 0);
}

#[test]
fn read_without_options_then_duplicate_acks_send_nothing() {
    let (mut h, l, _) = harness(false);
    let outs = dgram(&mut h, l, PEER, b"\x00\x01hello.txt\x00octet\x00");
    let s = sent(&outs);
    assert_eq!(s.len(), 1);
    let (tsock, _, pkt) = &s[0];
    assert_ne!(*tsock, l, "data comes from the transfer's own socket");
    assert_eq!(pkt, b"\x00\x03\x00\x01hello world");
    let outs = dgram(&mut h, *tsock, PEER, b"\x00\x04\x00\x01");
    assert_eq!(closes(&outs), 1, "short block acknowledged: done and closed");
    assert_eq!(h.svc.transfers(), 0);
}

#[test]
fn duplicate_acks_never_resend() {
    let (mut h, l, _) = harness(false);
    let outs = dgram(&mut h, l, PEER, b"\x00\x01big\x00octet\x00");
    let tsock = sent(&outs)[0].0;
    let outs = dgram(&mut h, tsock, PEER, b"\x00\x04\x00\x01");
    assert_eq!(sent(&outs)[0].2[..4], *b"\x00\x03\x00\x02");
    for _ in 0..3 {
        assert!(dgram(&mut h, tsock, PEER, b"\x00\x04\x00\x01").is_empty(), "Sorcerer's Apprentice");
    }
}

#[test]
fn oack_then_error_8_ends_quietly() {
    let (mut h, l, _) = harness(false);
    let outs = dgram(&mut h, l, PEER, b"\x00\x01hello.txt\x00octet\x00tsize\x000\x00");
    let (tsock, _, pkt) = sent(&outs)[0].clone();
    assert_eq!(pkt, b"\x00\x06tsize\x0011\x00");
    let outs = dgram(&mut h, tsock, PEER, b"\x00\x05\x00\x08size probe\x00");
    assert!(sent(&outs).is_empty(), "no answer to an ERROR");
    assert_eq!(closes(&outs), 1);
}

#[test]
fn foreign_tid_gets_error_5_and_the_transfer_goes_on() {
    let (mut h, l, _) = harness(false);
    let outs = dgram(&mut h, l, PEER, b"\x00\x01big\x00octet\x00");
    let tsock = sent(&outs)[0].0;
    let outs = dgram(&mut h, tsock, "127.0.0.1:6000", b"\x00\x04\x00\x01");
    let s = sent(&outs);
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].1, "127.0.0.1:6000".parse().unwrap());
    assert_eq!(s[0].2[..4], *b"\x00\x05\x00\x05");
    assert!(
        dgram(&mut h, tsock, "127.0.0.1:6000", b"\x00\x05\x00\x05x\x00").is_empty(),
        "never answer an ERROR"
    );
    assert!(
        dgram(&mut h, tsock, "127.0.0.1:19", b"\x00\x04\x00\x01").is_empty(),
        "never answer a privileged (forgeable chargen/daytime) port: no reply loop"
    );
    let outs = dgram(&mut h, tsock, PEER, b"\x00\x04\x00\x01");
    assert_eq!(sent(&outs)[0].2[..4], *b"\x00\x03\x00\x02");
}

#[test]
fn duplicate_request_does_not_start_a_second_transfer() {
    let (mut h, l, _) = harness(false);
    assert_eq!(sent(&dgram(&mut h, l, PEER, b"\x00\x01big\x00octet\x00")).len(), 1);
    assert!(dgram(&mut h, l, PEER, b"\x00\x01big\x00octet\x00").is_empty());
    assert_eq!(h.svc.transfers(), 1);
}

#[test]
fn malformed_requests_get_error_4_strays_are_dropped() {
    let (mut h, l, _) = harness(false);
    let error4: &[&[u8]] = &[
        b"\x00\x09junk",
        b"\x00\x01file",
        b"\x00\x01\x00octet\x00",
        b"\x00\x01f\x00binary\x00",
        b"\x00\x01f\x00octet\x00blksize\x00",
        b"\x00\x01f\x00mail\x00",
    ];
    for pkt in error4 {
        let s = sent(&dgram(&mut h, l, PEER, pkt));
        assert_eq!(s.len(), 1, "{pkt:?}");
        assert_eq!(s[0].2[..4], *b"\x00\x05\x00\x04", "{pkt:?}");
    }
    let dropped: &[&[u8]] =
        &[b"", b"\x01", b"\x00\x03\x00\x01data", b"\x00\x04\x00\x01", b"\x00\x05\x00\x01x\x00"];
    for pkt in dropped {
        assert!(dgram(&mut h, l, PEER, pkt).is_empty(), "{pkt:?}");
    }
    let junk = vec![0xa5u8; 65507];
    assert_eq!(sent(&dgram(&mut h, l, PEER, &junk)).len(), 1);
    assert_eq!(h.svc.transfers(), 0);
}

#[test]
fn uploads_refused_when_disabled_and_capped_per_client() {
    let (mut h, l, _) = harness(false);
    let s = sent(&dgram(&mut h, l, PEER, b"\x00\x02new\x00octet\x00"));
    assert_eq!(s[0].2[..4], *b"\x00\x05\x00\x02");
    assert_eq!(sent(&dgram(&mut h, l, "127.0.0.1:2001", b"\x00\x01big\x00octet\x00")).len(), 1);
    assert_eq!(sent(&dgram(&mut h, l, "127.0.0.1:2002", b"\x00\x01big\x00octet\x00")).len(), 1);
    let s = sent(&dgram(&mut h, l, "127.0.0.1:2003", b"\x00\x01big\x00octet\x00"));
    assert_eq!(s[0].0, l, "refusal comes from the listener");
    assert_eq!(s[0].2[..4], *b"\x00\x05\x00\x00");
}

#[test]
fn silent_peer_is_retried_then_dropped_and_closed() {
    let (mut h, l, _) = harness(false);
    let outs = dgram(&mut h, l, PEER, b"\x00\x01big\x00octet\x00");
    let tsock = sent(&outs)[0].0;
    let mut resends = 0;
    let mut gaps = Vec::new();
    let mut last = h.now;
    while let Some(outs) = h.fire_next() {
        gaps.push(h.now - last);
        last = h.now;
        resends +=
            sent(&outs).iter().filter(|(s, _, p)| *s == tsock && p[..4] == *b"\x00\x03\x00\x01").count();
        if closes(&outs) == 1 {
            break;
        }
    }
    assert_eq!(resends, 2, "max_retries resends");
    assert_eq!(gaps, [Duration::from_secs(1), Duration::from_secs(2), Duration::from_secs(4)], "doubling");
    assert_eq!(h.svc.transfers(), 0);
    assert!(h.svc.poll_timeout().is_none());
}

#[test]
fn upload_is_committed_after_the_last_block_only() {
    let (mut h, l, fs) = harness(true);
    let outs = dgram(&mut h, l, PEER, b"\x00\x02up\x00octet\x00blksize\x008\x00");
    let (tsock, _, pkt) = sent(&outs)[0].clone();
    assert_eq!(Packet::parse(&pkt).unwrap(), Packet::Oack { options: vec![("blksize", "8")] });
    let outs = dgram(&mut h, tsock, PEER, b"\x00\x03\x00\x0112345678");
    assert_eq!(sent(&outs)[0].2, b"\x00\x04\x00\x01");
    assert!(fs.get("up").is_none());
    let outs = dgram(&mut h, tsock, PEER, b"\x00\x03\x00\x02abc");
    assert_eq!(sent(&outs)[0].2, b"\x00\x04\x00\x02");
    assert_eq!(fs.get("up").unwrap(), b"12345678abc");
    // A resent final block is acknowledged again during the dally; then the socket closes.
    assert_eq!(sent(&dgram(&mut h, tsock, PEER, b"\x00\x03\x00\x02abc"))[0].2, b"\x00\x04\x00\x02");
    let mut closed = 0;
    while let Some(outs) = h.fire_next() {
        closed += closes(&outs);
    }
    assert_eq!(closed, 1);
    // Existing files are not overwritten.
    let s = sent(&dgram(&mut h, l, PEER, b"\x00\x02up\x00octet\x00"));
    assert_eq!(s[0].2[..4], *b"\x00\x05\x00\x06");
}

#[test]
fn a_dallying_upload_gives_way_to_the_same_clients_next_request() {
    let (mut h, l, fs) = harness(true);
    let outs = dgram(&mut h, l, PEER, b"\x00\x02up2\x00octet\x00");
    let tsock = sent(&outs)[0].0;
    dgram(&mut h, tsock, PEER, b"\x00\x03\x00\x01tiny");
    assert_eq!(fs.get("up2").unwrap(), b"tiny");
    let outs = dgram(&mut h, l, PEER, b"\x00\x01hello.txt\x00octet\x00");
    assert_eq!(closes(&outs), 1, "the dallying upload is closed");
    assert_eq!(sent(&outs)[0].2, b"\x00\x03\x00\x01hello world");
    assert_eq!(h.svc.transfers(), 1);
}

#[test]
fn an_upload_may_not_outgrow_its_declared_tsize() {
    let (mut h, l, fs) = harness(true);
    let outs = dgram(&mut h, l, PEER, b"\x00\x02liar\x00octet\x00blksize\x008\x00tsize\x0010\x00");
    let tsock = sent(&outs)[0].0;
    assert_eq!(sent(&dgram(&mut h, tsock, PEER, b"\x00\x03\x00\x0112345678"))[0].2, b"\x00\x04\x00\x01");
    // A second full block takes it to 16 bytes, over the 10 it declared: refused with ERROR 3.
    let s = sent(&dgram(&mut h, tsock, PEER, b"\x00\x03\x00\x0212345678"));
    assert_eq!(s[0].2[..4], *b"\x00\x05\x00\x03", "disk full / allocation exceeded");
    assert!(fs.get("liar").is_none(), "nothing is committed");
}
