//! The reactor proved with its simplest protocol: TCP and UDP echo against the real binary.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::thread;
use std::time::{Duration, Instant};

use common::Server;

fn echo_server(extra: &[&str]) -> Server {
    let mut args = vec!["--echo", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    Server::start(&args)
}

/// Bytes that differ per client and per position, so a misrouted or reordered byte is caught.
fn pattern(seed: u32, len: usize) -> Vec<u8> {
    (0..len).map(|i| (seed.wrapping_mul(31).wrapping_add(i as u32 * 7) % 251) as u8).collect()
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn thousand_concurrent_clients_every_byte_checked_on_one_thread() {
    common::raise_fd_limit();
    let mut server = echo_server(&[]);
    let addr = server.addr("echo/tcp");
    let mut clients: Vec<TcpStream> = (0..1000).map(|_| connect(addr)).collect();
    let stats = server.stats_until(Duration::from_secs(10), |s| s["echo.conns_now"] == 1000);
    assert_eq!(stats["echo.conns_now"], 1000);
    assert_eq!(server.threads(), 1, "the server serves 1,000 clients from one thread");
    for round in 0..3u32 {
        // Everyone writes first, then everyone reads: the server must interleave them all.
        for (i, c) in clients.iter_mut().enumerate() {
            c.write_all(&pattern(i as u32 + round * 1000, 1500)).unwrap();
        }
        for (i, c) in clients.iter_mut().enumerate() {
            let mut got = vec![0; 1500];
            c.read_exact(&mut got).unwrap();
            assert_eq!(got, pattern(i as u32 + round * 1000, 1500), "client {i} round {round}");
        }
    }
    assert_eq!(server.threads(), 1);
    drop(clients);
    let stats = server.stats_until(Duration::from_secs(10), |s| s["echo.conns_now"] == 0);
    assert_eq!(stats["echo.conns_now"], 0);
    assert_eq!(stats["reactor.live_sockets"], 2, "only the two listeners remain");
}

#[test]
fn sixteen_mib_through_one_connection() {
    let server = echo_server(&[]);
    let c = connect(server.addr("echo/tcp"));
    let data = pattern(7, 16 << 20);
    let mut writer = c.try_clone().unwrap();
    let sent = data.clone();
    let t = thread::spawn(move || {
        // Odd-sized writes so the server sees every kind of partial read and write.
        for chunk in sent.chunks(100_003) {
            writer.write_all(chunk).unwrap();
        }
        writer.shutdown(Shutdown::Write).unwrap();
    });
    let mut got = Vec::with_capacity(data.len());
    (&c).read_to_end(&mut got).unwrap();
    t.join().unwrap();
    assert_eq!(got.len(), data.len());
    assert!(got == data, "16 MiB came back altered");
}

#[test]
fn a_client_that_never_reads_is_bounded_and_others_are_served() {
    let server = echo_server(&[]);
    let addr = server.addr("echo/tcp");
    let before = rss_kib(server.pid());
    let mut hog = connect(addr);
    hog.set_write_timeout(Some(Duration::from_millis(500))).unwrap();
    let chunk = vec![b'x'; 64 * 1024];
    let mut pushed = 0usize;
    // Write until the server stops reading and every buffer on the way is full.
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && pushed < 256 << 20 {
        match hog.write(&chunk) {
            Ok(n) => pushed += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
            Err(e) => panic!("write: {e}"),
        }
    }
    assert!(pushed < 256 << 20, "the server kept reading from a client that never reads");
    let grown = rss_kib(server.pid()).saturating_sub(before);
    assert!(grown < 8 * 1024, "server memory grew by {grown} KiB for one stuck client");
    // Another client is still served.
    let mut other = connect(addr);
    other.write_all(b"still here").unwrap();
    let mut got = [0; 10];
    other.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"still here");
}

#[test]
fn half_close_flushes_then_closes() {
    let server = echo_server(&[]);
    let mut c = connect(server.addr("echo/tcp"));
    let data = pattern(3, 300_000);
    c.write_all(&data).unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let mut got = Vec::new();
    c.read_to_end(&mut got).expect("server closes after flushing");
    assert!(got == data);
}

#[test]
fn connect_and_reset_floods_leave_no_slab_entry() {
    let mut server = echo_server(&[]);
    let addr = server.addr("echo/tcp");
    let baseline = server.stats()["reactor.live_sockets"];
    for i in 0..600 {
        let s = TcpStream::connect(addr).unwrap();
        if i % 3 == 0 {
            let _ = (&s).write_all(b"some bytes the server will try to echo");
        }
        // SO_LINGER 0: close with RST instead of FIN.
        socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO)).unwrap();
        drop(s);
    }
    let stats = server.stats_until(Duration::from_secs(10), |s| s["reactor.live_sockets"] == baseline);
    assert_eq!(stats["reactor.live_sockets"], baseline, "{stats:?}");
    assert_eq!(stats["echo.conns_now"], 0);
    assert_eq!(stats["echo.conns_total"], 600);
}

#[test]
fn sigterm_with_clients_connected_exits_zero() {
    let mut server = echo_server(&[]);
    let addr = server.addr("echo/tcp");
    let mut clients: Vec<TcpStream> = (0..50).map(|_| connect(addr)).collect();
    clients[0].write_all(b"ping").unwrap();
    let mut got = [0; 4];
    clients[0].read_exact(&mut got).unwrap();
    server.stats_until(Duration::from_secs(5), |s| s["echo.conns_now"] == 50);
    let status = server.terminate(Duration::from_secs(10));
    assert!(status.success(), "exit status {status:?}");
    // Every client sees the connection closed.
    let mut buf = [0; 1];
    assert_eq!(clients[1].read(&mut buf).unwrap_or(0), 0);
    assert!(server.log.iter().any(|l| l.contains("stats echo (final)")), "counters logged at exit");
}

#[test]
fn connection_limit_refuses_cleanly() {
    let mut server = echo_server(&["--echo-max-conns", "2"]);
    let addr = server.addr("echo/tcp");
    let a = connect(addr);
    let b = connect(addr);
    server.stats_until(Duration::from_secs(5), |s| s["echo.conns_now"] == 2);
    let mut c = connect(addr);
    let mut buf = [0; 8];
    assert_eq!(c.read(&mut buf).unwrap_or(0), 0, "the third connection is closed at once");
    let stats = server.stats();
    assert_eq!(stats["echo.refused"], 1);
    drop((a, b));
    server.stats_until(Duration::from_secs(5), |s| s["echo.conns_now"] == 0);
    let mut d = connect(addr);
    d.write_all(b"ok").unwrap();
    d.read_exact(&mut buf[..2]).unwrap();
    assert_eq!(&buf[..2], b"ok", "a slot freed up");
}

#[test]
fn udp_echo_round_trips() {
    let server = echo_server(&[]);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let to = server.addr("echo/udp");
    for len in [0usize, 1, 512, 1472, 9000, 65_507] {
        let data = pattern(len as u32, len);
        sock.send_to(&data, to).unwrap();
        let mut buf = vec![0; 65_536];
        let (n, from) = sock.recv_from(&mut buf).unwrap();
        assert_eq!(from, to);
        assert_eq!(&buf[..n], &data[..], "datagram of {len} bytes");
    }
}

#[test]
fn udp_from_privileged_port_is_dropped_and_counted() {
    let mut server = echo_server(&[]);
    let to = server.addr("echo/udp");
    // Binding a port below 1024 needs root; CI runs as root.
    let low = match UdpSocket::bind("127.0.0.1:999").or_else(|_| UdpSocket::bind("127.0.0.1:0")) {
        Ok(s) if s.local_addr().unwrap().port() < 1024 => s,
        _ if std::env::var("CI").as_deref() == Ok("true") => panic!("cannot bind a privileged port in CI"),
        _ => {
            eprintln!("skipped: binding a port below 1024 needs root");
            return;
        }
    };
    low.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    low.send_to(b"reflect me", to).unwrap();
    let mut buf = [0; 64];
    assert!(low.recv_from(&mut buf).is_err(), "no answer to a privileged source port");
    let stats = server.stats_until(Duration::from_secs(5), |s| s["echo.dropped_privileged"] == 1);
    assert_eq!(stats["echo.dropped_privileged"], 1);
    assert_eq!(stats["echo.dgrams_out"], 0);
}

#[test]
fn bind_failure_at_startup_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = std::process::Command::new(common::netlab_bin())
        .args(["serve", "--chat", "off", "--tftp", "off", "--echo", &addr])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot listen on") && err.contains("echo"), "{err}");
}

#[test]
fn echo_over_ipv6_loopback() {
    let server = Server::start(&["--echo", "[::1]:0"]);
    let mut c = connect(server.addr("echo/tcp"));
    c.write_all(b"six").unwrap();
    let mut got = [0; 3];
    c.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"six");
    let u = UdpSocket::bind("[::1]:0").unwrap();
    u.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    u.send_to(b"v6", server.addr("echo/udp")).unwrap();
    let mut buf = [0; 8];
    let n = u.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"v6");
}

#[test]
fn idle_connections_are_closed_and_active_ones_kept() {
    let mut server = echo_server(&["--echo-idle-timeout", "400ms"]);
    let addr = server.addr("echo/tcp");
    let baseline = server.stats()["reactor.live_sockets"];
    let mut quiet = connect(addr);
    let mut busy = connect(addr);
    let mut buf = [0; 1];
    // The busy client talks every 100 ms for well over the timeout.
    for _ in 0..10 {
        busy.write_all(b"!").unwrap();
        busy.read_exact(&mut buf).unwrap();
        thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(quiet.read(&mut buf).unwrap_or(0), 0, "the quiet client was closed");
    busy.write_all(b"?").unwrap();
    busy.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"?", "the busy one is still served");
    let stats = server.stats_until(Duration::from_secs(5), |s| s["echo.idle_closed"] >= 1);
    assert_eq!(stats["echo.idle_closed"], 1);
    drop(busy);
    let stats = server.stats_until(Duration::from_secs(5), |s| s["reactor.live_sockets"] == baseline);
    assert_eq!(stats["reactor.live_sockets"], baseline);
    let _ = quiet.write_all(b"late");
}
