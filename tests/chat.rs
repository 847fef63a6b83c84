//! TCP chat against the real binary over real sockets on 127.0.0.1.

mod chatkit;
mod common;

use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::{Shutdown, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chatkit::{Client, assert_back_to_baseline, is_stamped, read_some, start};

#[test]
fn join_leave_nicks_private_messages_rooms_and_who() {
    let (mut server, addr) = start(&[]);
    let mut alice = Client::join(addr, "alice");
    let mut bob = Client::join(addr, "bob");
    assert_eq!(alice.expect("joined"), "* bob joined #lobby");

    // Nick collision, without regard to case; the user is asked again.
    let mut late = Client::connect(addr);
    late.expect("* choose a nickname");
    late.send("ALICE");
    assert_eq!(late.line().unwrap(), "! nickname ALICE is taken");
    late.expect("* choose a nickname");
    late.send("carol");
    late.expect("* you joined #lobby (3 here");
    alice.expect("* carol joined #lobby");
    bob.expect("* carol joined #lobby");

    // A message reaches everyone else, stamped; the sender gets no copy.
    alice.send("hello all");
    let line = bob.line().unwrap();
    assert!(is_stamped(&line, "alice: hello all"), "{line}");
    assert!(is_stamped(&late.line().unwrap(), "alice: hello all"));

    // Private messages.
    bob.send("/msg Carol psst");
    assert_eq!(bob.line().unwrap(), "* sent to carol");
    assert!(is_stamped(&late.line().unwrap(), "(private) bob: psst"));
    bob.send("/msg nobody hi");
    assert_eq!(bob.line().unwrap(), "! no such nick: nobody");

    // /who lists the room, sorted.
    alice.send("/who");
    assert_eq!(alice.line().unwrap(), "* 3 in #lobby:");
    assert_eq!(alice.line().unwrap(), "*   alice bob carol");

    // Rooms: created on first join, gone when empty; messages stay in their room.
    bob.send("/join #rust");
    bob.expect("* you joined #rust (1 here");
    assert_eq!(alice.line().unwrap(), "* bob left #lobby (moved to #rust)");
    bob.send("/rooms");
    assert_eq!(bob.line().unwrap(), "* 2 rooms:");
    assert_eq!(bob.line().unwrap(), "*   #lobby (2)");
    assert_eq!(bob.line().unwrap(), "*   #rust (1)");
    alice.send("lobby only");
    assert_eq!(late.line().unwrap(), "* bob left #lobby (moved to #rust)");
    assert!(is_stamped(&late.line().unwrap(), "alice: lobby only"));
    bob.send("/join lobby");
    bob.expect("* you joined #lobby");
    bob.send("/rooms");
    assert_eq!(bob.line().unwrap(), "* 1 rooms:");
    assert_eq!(alice.line().unwrap(), "* bob joined #lobby");
    assert_eq!(late.line().unwrap(), "* bob joined #lobby");

    // Leave notices carry the reason.
    late.send("/quit gotta go");
    assert_eq!(late.line().unwrap(), "* bye");
    assert!(late.until_eof().is_empty());
    assert_eq!(alice.line().unwrap(), "* carol left #lobby (quit: gotta go)");
    bob.send("q!");
    assert_eq!(alice.line().unwrap(), "* bob left #lobby (quit)");
    let dave = Client::join(addr, "dave");
    alice.expect("* dave joined");
    dave.writer.shutdown(Shutdown::Both).unwrap();
    assert_eq!(alice.line().unwrap(), "* dave left #lobby (closed)");

    assert_eq!(server.threads(), 1);
    drop((alice, bob, dave));
    assert_back_to_baseline(&mut server);
}

#[test]
fn hostile_input_long_lines_bad_utf8_escapes_and_unknown_commands() {
    let (mut server, addr) = start(&["--chat-max-line", "100"]);
    let mut alice = Client::join(addr, "alice");
    let mut bob = Client::join(addr, "bob");
    alice.expect("* bob joined");

    // An over-long line: one error, the rest discarded up to the newline, the connection kept.
    alice.send_raw(&vec![b'x'; 50_000]);
    assert_eq!(alice.line().unwrap(), "! line too long (max 100 bytes): discarded");
    alice.send_raw(&vec![b'y'; 50_000]);
    alice.send("\nafter");
    assert!(is_stamped(&bob.line().unwrap(), "alice: after"));
    alice.send(&"z".repeat(100));
    assert!(bob.line().unwrap().ends_with(&"z".repeat(100)));

    // Invalid UTF-8 is refused.
    alice.send_raw(b"caf\xc3(\r\n");
    assert_eq!(alice.line().unwrap(), "! invalid UTF-8: line refused");

    // Escape sequences and other controls are removed before relaying; TAB stays.
    alice.send("\x1b[2J\x1b]0;owned\x07hi\tthere\x08\u{9b}31m!");
    assert!(is_stamped(&bob.line().unwrap(), "alice: [2J]0;ownedhi\tthere31m!"));

    // Unknown commands and empty lines: a clear error, nothing relayed.
    alice.send("/frobnicate");
    assert_eq!(alice.line().unwrap(), "! unknown command /frobnicate (try /help)");
    alice.send("");
    assert_eq!(alice.line().unwrap(), "! empty message not sent");
    alice.send("end");
    assert!(is_stamped(&bob.line().unwrap(), "alice: end"), "nothing else reached bob");

    let s = server.stats();
    assert_eq!(s["chat.too_long"], 1, "the y's were the rest of the same line");
    assert_eq!(s["chat.bad_utf8"], 1);
}

#[test]
fn flooding_is_refused_then_disconnected() {
    let (mut server, addr) =
        start(&["--chat-flood-burst", "5", "--chat-flood-rate", "1", "--chat-flood-kick", "20"]);
    let mut alice = Client::join(addr, "alice");
    let mut bob = Client::join(addr, "bob");
    alice.expect("* bob joined");
    std::thread::sleep(Duration::from_secs(1)); // bob's bucket refills after his nickname line
    let burst: String = (0..100).map(|i| format!("line {i}\r\n")).collect();
    bob.send_raw(burst.as_bytes());
    let lines = bob.until_eof();
    assert!(lines.iter().any(|l| l.starts_with("! flood limit")), "{lines:?}");
    assert_eq!(lines.last().map(String::as_str), Some("! flooding: disconnecting"));
    let relayed: Vec<String> =
        std::iter::from_fn(|| alice.line()).take_while(|l| !l.contains("left")).collect();
    assert_eq!(relayed.len(), 5, "only the burst got through: {relayed:?}");
    assert!(relayed.iter().enumerate().all(|(i, l)| l.ends_with(&format!("bob: line {i}"))));
    let s = server.stats();
    assert_eq!(s["chat.kicked_flooding"], 1);
}

#[test]
fn flood_leave_notice_says_flooding() {
    let (_server, addr) = start(&["--chat-flood-burst", "2", "--chat-flood-kick", "3"]);
    let mut alice = Client::join(addr, "alice");
    let mut bob = Client::join(addr, "bob");
    alice.expect("* bob joined");
    bob.send_raw(b"a\nb\nc\nd\ne\nf\ng\n");
    bob.until_eof();
    assert_eq!(alice.expect("left"), "* bob left #lobby (flooding)");
}

#[test]
fn idle_users_time_out() {
    let (mut server, addr) = start(&["--chat-idle-timeout", "1s"]);
    let mut alice = Client::join(addr, "alice");
    let mut bob = Client::join(addr, "bob");
    alice.expect("* bob joined");
    // Alice keeps talking; Bob idles and is disconnected.
    let started = Instant::now();
    let bob_lines = std::thread::spawn(move || bob.until_eof());
    while started.elapsed() < Duration::from_millis(1500) {
        alice.send("still here");
        std::thread::sleep(Duration::from_millis(200));
    }
    let bob_lines = bob_lines.join().unwrap();
    assert_eq!(bob_lines.last().map(String::as_str), Some("! idle for 1s: disconnecting"));
    assert_eq!(alice.expect("left"), "* bob left #lobby (timeout)");
    assert_eq!(server.stats()["chat.kicked_idle"], 1);
}

#[test]
fn server_full_refuses_the_next_user() {
    let (mut server, addr) = start(&["--chat-max-users", "2"]);
    let _a = Client::join(addr, "alice");
    let _b = Client::join(addr, "bob");
    let mut c = Client::connect(addr);
    assert_eq!(c.line().unwrap(), "! server full");
    assert!(c.until_eof().is_empty());
    assert_eq!(server.stats()["chat.refused"], 1);
}

#[test]
fn a_reader_that_never_reads_is_dropped_as_too_slow() {
    let (mut server, addr) = start(&[
        "--chat-output-limit",
        "65536",
        "--chat-flood-rate",
        "100000",
        "--chat-flood-burst",
        "100000",
    ]);
    let mut alice = Client::join(addr, "alice");
    let mut bob = Client::join(addr, "bob");
    let stuck = Client::join(addr, "stuck");
    alice.expect("* stuck joined");
    bob.expect("* stuck joined");
    // Alice talks; bob reads everything; `stuck` never reads. Kernel buffers on loopback hold a few
    // MB, then the server's 64 KiB cap is reached. Batches stay well under the cap, since what one
    // turn queues for bob counts against it before it is written.
    let text = "x".repeat(1000);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut sent = 0;
    loop {
        assert!(Instant::now() < deadline, "stuck was never dropped after {sent} lines");
        let batch: String = (0..20).map(|i| format!("{} {text}\n", sent + i)).collect();
        alice.send_raw(batch.as_bytes());
        for i in 0..20 {
            let line = bob.line().expect("bob keeps receiving");
            assert!(line.contains(&format!("alice: {} ", sent + i)), "{line}");
        }
        sent += 20;
        if server.stats()["chat.kicked_slow"] == 1 {
            break;
        }
    }
    assert_eq!(bob.expect("left"), "* stuck left #lobby (too slow)");
    alice.send("still flowing");
    assert!(bob.line().unwrap().ends_with("alice: still flowing"));
    assert_eq!(server.threads(), 1);
    drop(stuck);
}

#[test]
fn a_real_nc_session() {
    let (mut server, addr) = start(&[]);
    let mut alice = Client::join(addr, "alice");
    let mut nc = Command::new("nc")
        .args([&addr.ip().to_string(), &addr.port().to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("nc (netcat-openbsd) must be installed: make deps");
    let mut stdin = nc.stdin.take().unwrap();
    let mut out = BufReader::new(nc.stdout.take().unwrap());
    let mut next = move || {
        let mut l = String::new();
        out.read_line(&mut l).unwrap();
        l
    };
    assert!(next().starts_with("* welcome to netlab chat, 127.0.0.1:"));
    writeln!(stdin, "ncuser").unwrap();
    while !next().starts_with("* you joined #lobby") {}
    assert_eq!(alice.line().unwrap(), "* ncuser joined #lobby");
    writeln!(stdin, "hi from nc").unwrap();
    assert!(is_stamped(&alice.line().unwrap(), "ncuser: hi from nc"));
    alice.send("hi nc");
    let got = next();
    assert!(got.ends_with("alice: hi nc\r\n"), "{got:?}");
    writeln!(stdin, "/quit").unwrap();
    assert_eq!(next(), "* bye\r\n");
    assert_eq!(alice.line().unwrap(), "* ncuser left #lobby (quit)");
    drop(stdin);
    let deadline = Instant::now() + Duration::from_secs(5);
    while nc.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = nc.kill();
    let _ = nc.wait();
    drop(alice);
    assert_back_to_baseline(&mut server);
}

/// One of the thousand clients: a non-blocking socket and what it has received so far.
struct Crowd {
    sock: TcpStream,
    buf: Vec<u8>,
    joined: bool,
    /// Next expected sequence number from each sender.
    next: [u32; SENDERS],
}

const CLIENTS: usize = 1000;
const SENDERS: usize = 10;
const LINES: u32 = 100;

impl Crowd {
    /// Consume complete lines; panics on a message out of order.
    fn absorb(&mut self, me: usize) {
        let Some(end) = self.buf.iter().rposition(|&b| b == b'\n') else { return };
        let text = String::from_utf8(self.buf.drain(..=end).collect()).unwrap();
        for line in text.split_terminator("\r\n") {
            if line.starts_with("* you joined #lobby") {
                self.joined = true;
            }
            // "[HH:MM:SS] u3: m17"
            let Some((nick, msg)) = line.get(11..).and_then(|r| r.split_once(": ")) else { continue };
            let (Some(k), Some(seq)) = (nick.strip_prefix('u'), msg.strip_prefix('m')) else { continue };
            let (k, seq): (usize, u32) = (k.parse().unwrap(), seq.parse().unwrap());
            assert_ne!(k, me, "client {me} got its own line");
            assert_eq!(seq, self.next[k], "client {me}: lines from u{k} out of order");
            self.next[k] += 1;
        }
    }

    fn done(&self, me: usize) -> bool {
        (0..SENDERS).all(|k| k == me || self.next[k] == LINES)
    }
}

/// Poll every client until `pred` holds for all of them (bounded by `deadline`).
fn pump(crowd: &mut [Crowd], deadline: Instant, what: &str, pred: impl Fn(&Crowd, usize) -> bool) {
    loop {
        let mut waiting = 0;
        for (i, c) in crowd.iter_mut().enumerate() {
            assert!(read_some(&mut c.sock, &mut c.buf), "client {i} was disconnected");
            c.absorb(i);
            if !pred(c, i) {
                waiting += 1;
            }
        }
        if waiting == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "{waiting} clients still waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_thousand_clients_in_one_room_get_every_line_in_order() {
    common::raise_fd_limit();
    let (mut server, addr) = start(&["--chat-flood-rate", "1000", "--chat-flood-burst", "1000"]);
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut crowd: Vec<Crowd> = (0..CLIENTS)
        .map(|i| {
            let mut sock = TcpStream::connect(addr).expect("connect");
            sock.write_all(format!("u{i}\r\n").as_bytes()).unwrap();
            sock.set_nonblocking(true).unwrap();
            Crowd { sock, buf: Vec::new(), joined: false, next: [0; SENDERS] }
        })
        .collect();
    pump(&mut crowd, deadline, "their join", |c, _| c.joined);
    assert_eq!(server.stats()["chat.members"], CLIENTS as u64);

    for seq in 0..LINES {
        for (k, c) in crowd.iter_mut().take(SENDERS).enumerate() {
            let line = format!("m{seq}\n");
            let mut rest = line.as_bytes();
            while !rest.is_empty() {
                match c.sock.write(rest) {
                    Ok(n) => rest = &rest[n..],
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(1))
                    }
                    Err(e) => panic!("sender u{k}: {e}"),
                }
            }
        }
    }
    pump(&mut crowd, deadline, "every line", |c, i| c.done(i));
    assert_eq!(server.threads(), 1, "one thread throughout");
    let s = server.stats();
    assert_eq!(s["chat.messages"], (SENDERS as u64) * u64::from(LINES));
    assert_eq!(s["chat.kicked_slow"], 0);
    drop(crowd);
    assert_back_to_baseline(&mut server);
}

#[test]
fn sigterm_says_goodbye_to_everyone() {
    let (mut server, addr) = start(&[]);
    let mut alice = Client::join(addr, "alice");
    let mut bob = Client::join(addr, "bob");
    alice.expect("* bob joined");
    let status = server.terminate(Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
    assert_eq!(alice.until_eof(), ["* server shutting down"]);
    assert_eq!(bob.until_eof(), ["* server shutting down"]);
}
