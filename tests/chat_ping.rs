//! `/ping` from the chat against the real server: results reach the asking user only, limits
//! hold, sockets are given back, and echo and TFTP keep being served on the same thread meanwhile.

mod common;
mod pingkit;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::Server;

const LINE_TIMEOUT: Duration = Duration::from_secs(10);

struct Client {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Client {
    fn join(addr: SocketAddr, nick: &str) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(LINE_TIMEOUT)).unwrap();
        let mut c = Client { writer: stream.try_clone().unwrap(), reader: BufReader::new(stream) };
        c.send(nick);
        c.expect("* you joined #lobby");
        c
    }
    fn send(&mut self, line: &str) {
        self.writer.write_all(format!("{line}\r\n").as_bytes()).expect("send");
    }
    fn line(&mut self) -> String {
        let mut s = String::new();
        self.reader.read_line(&mut s).expect("read a line");
        assert!(s.ends_with("\r\n"), "{s:?}");
        s.truncate(s.len() - 2);
        s
    }
    /// Read lines until one starts with `prefix`; returns it.
    fn expect(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + LINE_TIMEOUT;
        loop {
            assert!(Instant::now() < deadline, "no line starting with {prefix:?}");
            let l = self.line();
            if l.starts_with(prefix) {
                return l;
            }
        }
    }
}

/// Echo traffic over TCP and UDP until `stop`; counts verified round trips.
fn echo_load(tcp: SocketAddr, udp: SocketAddr, stop: Arc<AtomicBool>, done: Arc<AtomicU64>) {
    let mut t = TcpStream::connect(tcp).expect("echo connect");
    t.set_read_timeout(Some(LINE_TIMEOUT)).unwrap();
    let u = UdpSocket::bind("127.0.0.1:0").unwrap();
    u.set_read_timeout(Some(LINE_TIMEOUT)).unwrap();
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        let msg = [0x5a; 4096];
        t.write_all(&msg).unwrap();
        t.read_exact(&mut buf).unwrap();
        assert_eq!(buf, msg);
        u.send_to(b"ping?", udp).unwrap();
        let (n, _) = u.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"ping?");
        done.fetch_add(1, Ordering::Relaxed);
    }
}

/// Download `name` from a TFTP server with the netlab client, over and over until `stop`; counts
/// the downloads that came back whole.
fn tftp_load(
    server: SocketAddr,
    dir: std::path::PathBuf,
    size: u64,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
) {
    let out = dir.join("copy.bin");
    while !stop.load(Ordering::Relaxed) {
        let status = std::process::Command::new(common::netlab_bin())
            .args(["tftp", "get", &server.to_string(), "big.bin"])
            .arg(&out)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("run netlab tftp");
        assert!(status.success(), "a TFTP download failed while /ping ran");
        assert_eq!(std::fs::metadata(&out).unwrap().len(), size);
        done.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn ping_from_chat_while_echo_and_tftp_run() {
    if !pingkit::raw_sockets() {
        return;
    }
    let root = std::env::temp_dir().join(format!("netlab-chatping-{}", std::process::id()));
    std::fs::create_dir_all(&root).unwrap();
    let size = 2u64 << 20;
    std::fs::write(root.join("big.bin"), (0..size).map(|i| (i % 251) as u8).collect::<Vec<u8>>()).unwrap();
    let root_arg = root.to_str().unwrap().to_string();
    let mut server = Server::start(&[
        "--chat",
        "127.0.0.1:0",
        "--echo",
        "127.0.0.1:0",
        "--tftp",
        "127.0.0.1:0",
        "--tftp-root",
        &root_arg,
    ]);
    let chat = server.addr("chat/tcp");
    let (stop, done) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
    let load = {
        let (tcp, udp) = (server.addr("echo/tcp"), server.addr("echo/udp"));
        let (stop, done) = (Arc::clone(&stop), Arc::clone(&done));
        std::thread::spawn(move || echo_load(tcp, udp, stop, done))
    };
    let mut alice = Client::join(chat, "alice");
    let mut bob = Client::join(chat, "bob");
    alice.expect("* bob joined");
    let before = server.stats()["reactor.live_sockets"];
    let (tftp_stop, tftp_done) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
    let tftp = {
        let (addr, dir) = (server.addr("tftp/udp"), root.clone());
        let (stop, done) = (Arc::clone(&tftp_stop), Arc::clone(&tftp_done));
        std::thread::spawn(move || tftp_load(addr, dir, size, stop, done))
    };

    alice.send("/ping 127.0.0.1 3");
    assert_eq!(alice.line(), "* PING 127.0.0.1: 3 probes, 56 data bytes");
    alice.send("/ping ::1");
    let mut lines = Vec::new();
    while !lines.last().is_some_and(|l: &String| l.starts_with("* --- ")) {
        lines.push(alice.line());
        if lines.len() == 2 {
            assert_eq!(server.threads(), 1, "one thread serves chat, echo, TFTP and ping");
        }
    }
    let busy =
        lines.iter().position(|l| l == "* /ping: you already have a ping running; wait for it to finish");
    lines.remove(busy.expect("a second /ping is refused while one runs"));
    assert_eq!(lines.len(), 4, "{lines:?}");
    for (seq, l) in (1..=3).zip(&lines) {
        let prefix = format!("* 64 bytes from 127.0.0.1: icmp_seq={seq} ttl=64 time=");
        assert!(l.starts_with(&prefix) && l.ends_with(" ms"), "{l}");
    }
    let summary = &lines[3];
    assert!(
        summary.starts_with("* --- 127.0.0.1 ping statistics: 3 transmitted, 3 received, 0% packet loss")
    );

    // Bob saw none of it: the next thing he reads is the answer to his own command.
    bob.send("/who");
    assert!(bob.line().starts_with("* "), "bob's /who");
    let l = bob.line();
    assert!(!l.contains("bytes from") && !l.contains("PING"), "{l}");

    // TFTP and echo were served all along; the run's and the transfers' sockets are given back.
    tftp_stop.store(true, Ordering::Relaxed);
    tftp.join().expect("tftp load");
    assert!(tftp_done.load(Ordering::Relaxed) >= 1, "TFTP kept being served");
    let stats = server.stats_until(Duration::from_secs(10), |s| {
        s["chat.pings_now"] == 0 && s["reactor.live_sockets"] == before
    });
    assert_eq!(stats["reactor.live_sockets"], before, "{stats:?}");
    assert_eq!(stats["chat.pings_started"], 1);
    assert!(stats["tftp.transfers_ok"] >= 1);
    stop.store(true, Ordering::Relaxed);
    load.join().expect("echo load");
    assert!(done.load(Ordering::Relaxed) > 10, "echo kept being served");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn ping_arguments_are_checked_and_runs_are_bounded() {
    if !pingkit::raw_sockets() {
        return;
    }
    let server = Server::start(&["--chat", "127.0.0.1:0", "--chat-ping-max", "1"]);
    let chat = server.addr("chat/tcp");
    let mut alice = Client::join(chat, "alice");
    let mut bob = Client::join(chat, "bob");
    for (args, answer) in [
        ("/ping", "* /ping: usage: /ping HOST [COUNT]"),
        ("/ping example.com", "* /ping: 'example.com' is not an IP address (names are not resolved here"),
        ("/ping 127.0.0.1 0", "* /ping: COUNT must be 1 to 10"),
        ("/ping 127.0.0.1 99", "* /ping: COUNT must be 1 to 10"),
        // Refused before any socket is opened: no packet leaves loopback.
        (
            "/ping 192.0.2.1",
            "* /ping: 192.0.2.1 is not in the networks this server pings (127.0.0.0/8, ::1/128)",
        ),
        ("/ping ::ffff:10.0.0.1", "* /ping: ::ffff:10.0.0.1 is not in the networks this server pings"),
    ] {
        alice.send(args);
        alice.expect(answer);
    }
    alice.send("/ping localhost 2");
    alice.expect("* PING 127.0.0.1: 2 probes");
    bob.send("/ping ::1 1");
    bob.expect("* /ping: 1 pings are running already");
    // A user who leaves mid-run: the run ends and its socket is closed (no leak).
    drop(alice);
    bob.send("/ping ::1 1");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let l = bob.line();
        if l.starts_with("* PING ::1: 1 probes") {
            break;
        }
        if l.contains("pings are running already") {
            assert!(Instant::now() < deadline, "alice's run never ended");
            std::thread::sleep(Duration::from_millis(100));
            bob.send("/ping ::1 1");
        }
    }
    assert!(bob.expect("* 64 bytes from ::1: icmp_seq=1").contains(" time="));
    bob.expect("* --- ::1 ping statistics: 1 transmitted, 1 received, 0% packet loss");
}
