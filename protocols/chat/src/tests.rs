//! Unit tests of the chat on virtual time, through `ChatService` and the test harness.

use std::time::Duration;

use netlab_core::testkit::Harness;
use netlab_core::{CloseReason, Input, Output, Service, SockId};

use crate::{ChatConfig, ChatService, LeaveReason};

fn config() -> ChatConfig {
    ChatConfig { max_line: 64, idle_timeout: Duration::from_secs(60), ..ChatConfig::default() }
}

fn harness(config: ChatConfig) -> Harness<ChatService> {
    let addr = "127.0.0.1:7777".parse().unwrap();
    let mut h = Harness::new(ChatService::new(addr, config, Box::new(|_| (13u8, 4u8, 5u8))));
    assert!(h.start().is_empty());
    h
}

/// Everything written to `sock` in `outs`, as text.
fn text(outs: &[Output], sock: SockId) -> String {
    let mut s = String::new();
    for o in outs {
        if let Output::Write { sock: w, data } = o
            && *w == sock
        {
            s.push_str(std::str::from_utf8(data).unwrap());
        }
    }
    s
}

fn closed(outs: &[Output], sock: SockId) -> bool {
    outs.iter().any(|o| matches!(o, Output::Close { sock: s, flush: true } if *s == sock))
}

/// Connect and greet a client; returns its socket.
fn connect(h: &mut Harness<ChatService>, port: u16) -> SockId {
    let sock = h.new_sock();
    let listener = SockId { index: 2, generation: 0 };
    let peer = ([127, 0, 0, 1], port).into();
    let outs = h.input(Input::Accepted { listener, sock, peer });
    let greeting = text(&outs, sock);
    assert!(greeting.starts_with(&format!("* welcome to netlab chat, 127.0.0.1:{port}\r\n")), "{greeting}");
    assert!(greeting.contains("nickname"));
    sock
}

fn send(h: &mut Harness<ChatService>, sock: SockId, data: &str) -> Vec<Output> {
    h.input(Input::Stream { sock, data: data.as_bytes() })
}

/// Connect and take a nickname.
fn join(h: &mut Harness<ChatService>, nick: &str) -> SockId {
    let sock = connect(h, 40000);
    let outs = send(h, sock, &format!("{nick}\r\n"));
    assert!(text(&outs, sock).contains("* you joined #lobby"), "{}", text(&outs, sock));
    sock
}

#[test]
fn messages_reach_everyone_else_with_a_timestamp() {
    let mut h = harness(config());
    let a = join(&mut h, "alice");
    let b = join(&mut h, "bob");
    let c = join(&mut h, "carol");
    let outs = send(&mut h, a, "hello\r\n");
    assert_eq!(text(&outs, b), "[13:04:05] alice: hello\r\n");
    assert_eq!(text(&outs, c), "[13:04:05] alice: hello\r\n");
    assert_eq!(text(&outs, a), "", "no copy to the sender");
    // One allocation per broadcast: both writes share the same buffer.
    let ptrs: Vec<_> = outs
        .iter()
        .filter_map(|o| if let Output::Write { data, .. } = o { Some(data.as_ptr()) } else { None })
        .collect();
    assert_eq!(ptrs.len(), 2);
    assert_eq!(ptrs[0], ptrs[1]);
    let outs = send(&mut h, b, "/me waves\n");
    assert_eq!(text(&outs, a), "[13:04:05] * bob waves\r\n");
}

#[test]
fn join_and_leave_notices_with_reasons() {
    let mut h = harness(config());
    let a = join(&mut h, "alice");
    let b = connect(&mut h, 40001);
    let outs = send(&mut h, b, "bob\n");
    assert_eq!(text(&outs, a), "* bob joined #lobby\r\n");
    assert!(text(&outs, b).contains("* you joined #lobby (2 here"));
    let outs = send(&mut h, b, "/quit see you\n");
    assert_eq!(text(&outs, a), "* bob left #lobby (quit: see you)\r\n");
    assert!(text(&outs, b).ends_with("* bye\r\n"));
    assert!(closed(&outs, b));
    // The reactor's Closed for a socket we closed is ignored.
    assert!(h.input(Input::Closed { sock: b, reason: CloseReason::Requested }).is_empty());

    let c = join(&mut h, "carol");
    let outs = send(&mut h, c, "q!\n");
    assert_eq!(text(&outs, a), "* carol left #lobby (quit)\r\n");
    assert!(closed(&outs, c));

    let d = join(&mut h, "dave");
    let outs = h.input(Input::Eof { sock: d });
    assert_eq!(text(&outs, a), "* dave left #lobby (closed)\r\n");
    assert!(closed(&outs, d));

    let e = join(&mut h, "eve");
    let outs = h.input(Input::Closed { sock: e, reason: CloseReason::OutputLimit });
    assert_eq!(text(&outs, a), "* eve left #lobby (too slow)\r\n");
    assert_eq!(h.svc.chat().members(), 1);
    assert_eq!(h.svc.chat().stats().kicked_slow, 1);
}

#[test]
fn nick_rules_and_collisions() {
    let mut h = harness(config());
    let _a = join(&mut h, "Alice");
    let b = connect(&mut h, 40001);
    let outs = send(&mut h, b, "aLiCe\n");
    let t = text(&outs, b);
    assert!(t.starts_with("! nickname aLiCe is taken\r\n* choose a nickname"), "{t}");
    let outs = send(&mut h, b, "bad nick\n");
    assert!(text(&outs, b).starts_with("! invalid nickname: use only letters"));
    let outs = send(&mut h, b, &format!("{}\n", "x".repeat(33)));
    assert!(text(&outs, b).starts_with("! invalid nickname: longer than 32"));
    let outs = send(&mut h, b, "/who\n");
    assert_eq!(text(&outs, b), "! choose a nickname first\r\n");
    let outs = send(&mut h, b, "bob\n");
    assert!(text(&outs, b).contains("* you are bob"));
    let outs = send(&mut h, b, "/nick ALICE\n");
    assert_eq!(text(&outs, b), "! nickname ALICE is taken\r\n");
    let outs = send(&mut h, b, "/nick Bobby\n");
    assert_eq!(text(&outs, b), "* you are now Bobby\r\n");
    assert_eq!(text(&outs, _a), "* bob is now Bobby\r\n");
    // The old nick is free again; changing case of one's own nick is allowed.
    let c = join(&mut h, "bob");
    let outs = send(&mut h, c, "/nick BOB\n");
    assert_eq!(text(&outs, c), "* you are now BOB\r\n");
}

#[test]
fn private_messages() {
    let mut h = harness(config());
    let a = join(&mut h, "alice");
    let b = join(&mut h, "bob");
    let c = join(&mut h, "carol");
    let outs = send(&mut h, a, "/msg BOB psst\n");
    assert_eq!(text(&outs, b), "[13:04:05] (private) alice: psst\r\n");
    assert_eq!(text(&outs, a), "* sent to bob\r\n");
    assert_eq!(text(&outs, c), "");
    let outs = send(&mut h, a, "/msg nobody hi\n");
    assert_eq!(text(&outs, a), "! no such nick: nobody\r\n");
    let outs = send(&mut h, a, "/msg bob\n");
    assert_eq!(text(&outs, a), "! usage: /msg NICK TEXT\r\n");
}

#[test]
fn rooms_who_and_rooms() {
    let mut h = harness(config());
    let a = join(&mut h, "alice");
    let b = join(&mut h, "bob");
    let outs = send(&mut h, b, "/join #Rust\n");
    assert_eq!(text(&outs, a), "* bob left #lobby (moved to #Rust)\r\n");
    assert!(text(&outs, b).contains("* you joined #Rust (1 here"));
    let outs = send(&mut h, a, "only lobby\n");
    assert_eq!(text(&outs, b), "");
    let outs = send(&mut h, a, "/join rust\n");
    assert_eq!(text(&outs, b), "* alice joined #Rust\r\n");
    let outs = send(&mut h, a, "/join rust\n");
    assert_eq!(text(&outs, a), "! you are already in #rust\r\n");
    let outs = send(&mut h, b, "/who\n");
    assert_eq!(text(&outs, b), "* 2 in #Rust:\r\n*   alice bob\r\n");
    let outs = send(&mut h, b, "/rooms\n");
    assert_eq!(text(&outs, b), "* 1 rooms:\r\n*   #Rust (2)\r\n", "#lobby vanished when empty");
    let outs = send(&mut h, b, "/join bad/name\n");
    assert!(text(&outs, b).starts_with("! invalid room name"));
    let _c = join(&mut h, "carol");
    let outs = send(&mut h, b, "/rooms\n");
    assert_eq!(text(&outs, b), "* 2 rooms:\r\n*   #lobby (1)\r\n*   #Rust (2)\r\n");
}

#[test]
fn errors_for_unknown_commands_and_empty_lines() {
    let mut h = harness(config());
    let a = join(&mut h, "alice");
    let b = join(&mut h, "bob");
    let outs = send(&mut h, a, "/frobnicate x\n");
    assert_eq!(text(&outs, a), "! unknown command /frobnicate (try /help)\r\n");
    let outs = send(&mut h, a, "\n   \n");
    assert_eq!(text(&outs, a), "! empty message not sent\r\n".repeat(2));
    let outs = send(&mut h, a, "//slash\n");
    assert_eq!(text(&outs, b), "[13:04:05] alice: /slash\r\n");
    assert_eq!(text(&outs, a), "");
}

#[test]
fn long_lines_bad_utf8_and_controls() {
    let mut h = harness(config());
    let a = join(&mut h, "alice");
    let b = join(&mut h, "bob");
    // 64 bytes is the limit here; the rest of a longer line is discarded to its newline.
    let outs = send(&mut h, a, &"x".repeat(100));
    assert_eq!(text(&outs, a), "! line too long (max 64 bytes): discarded\r\n");
    let outs = send(&mut h, a, &format!("{}\nafter\n", "y".repeat(5000)));
    assert_eq!(text(&outs, b), "[13:04:05] alice: after\r\n");
    let outs = send(&mut h, a, &format!("{}\r\n", "z".repeat(64)));
    assert!(text(&outs, b).contains(&"z".repeat(64)));
    let outs = h.input(Input::Stream { sock: a, data: b"caf\xc3\n\xff\xfe\n" });
    assert_eq!(text(&outs, a), "! invalid UTF-8: line refused\r\n".repeat(2));
    assert_eq!(text(&outs, b), "");
    let outs = send(&mut h, a, "\x1b[2J\x1b]0;pwned\x07red\x08\ttab\u{9b}\n");
    assert_eq!(text(&outs, b), "[13:04:05] alice: [2J]0;pwnedred\ttab\r\n");
    let outs = send(&mut h, a, "\x1b\x07\n");
    assert_eq!(text(&outs, a), "! empty message not sent\r\n");
    let stats = h.svc.chat().stats();
    assert_eq!((stats.too_long, stats.bad_utf8), (1, 2), "the 5000 y's were the rest of the first long line");
}

#[test]
fn flood_limit_refuses_then_disconnects() {
    let cfg = ChatConfig { flood_rate: 1.0, flood_burst: 3, flood_kick: 5, ..config() };
    let mut h = harness(cfg);
    let a = join(&mut h, "alice");
    h.advance(Duration::from_secs(10)); // refill after the nickname line
    let b = join(&mut h, "bob");
    let outs = send(&mut h, a, "1\n2\n3\n4\n");
    assert_eq!(text(&outs, b).lines().count(), 3);
    assert!(text(&outs, a).starts_with("! flood limit"));
    h.advance(Duration::from_secs(1));
    let outs = send(&mut h, a, "5\n");
    assert_eq!(text(&outs, b), "[13:04:05] alice: 5\r\n", "one token back after a second");
    let outs = send(&mut h, a, &"x\n".repeat(10));
    assert!(text(&outs, a).ends_with("! flooding: disconnecting\r\n"));
    assert!(closed(&outs, a));
    assert_eq!(text(&outs, b), "* alice left #lobby (flooding)\r\n");
    assert_eq!(h.svc.chat().stats().kicked_flooding, 1);
}

#[test]
fn idle_members_time_out() {
    let mut h = harness(config());
    let a = join(&mut h, "alice");
    let b = join(&mut h, "bob");
    let lurker = connect(&mut h, 40002);
    assert!(h.advance(Duration::from_secs(59)).is_empty());
    send(&mut h, b, "still here\n");
    let outs = h.advance(Duration::from_secs(1));
    assert!(text(&outs, a).starts_with("! idle for 60s"));
    assert!(closed(&outs, a) && closed(&outs, lurker));
    assert_eq!(text(&outs, b), "* alice left #lobby (timeout)\r\n");
    assert!(!closed(&outs, b));
    let outs = h.fire_next().unwrap();
    assert!(closed(&outs, b));
    assert_eq!(h.svc.poll_timeout(), None);
    assert_eq!(h.svc.chat().members(), 0);
}

#[test]
fn full_chat_refuses() {
    let mut h = harness(ChatConfig { max_users: 1, ..config() });
    let _a = join(&mut h, "alice");
    let sock = h.new_sock();
    let peer = ([127, 0, 0, 1], 1).into();
    let outs = h.input(Input::Accepted { listener: SockId { index: 2, generation: 0 }, sock, peer });
    assert_eq!(text(&outs, sock), "! server full\r\n");
    assert!(closed(&outs, sock));
}

#[test]
fn partial_lines_hold_memory_only_while_partial() {
    let mut h = harness(config());
    let a = join(&mut h, "alice");
    let b = join(&mut h, "bob");
    assert!(text(&send(&mut h, a, "hel"), b).is_empty());
    assert!(text(&send(&mut h, a, "lo"), b).is_empty());
    assert_eq!(text(&send(&mut h, a, "\r\n"), b), "[13:04:05] alice: hello\r\n");
}

#[test]
fn external_commands_and_notify() {
    let mut h = harness(config());
    h.svc.add_external_command("ping", "ping HOST", "ping HOST from the server");
    let a = join(&mut h, "alice");
    let outs = send(&mut h, a, "/help\n");
    assert!(text(&outs, a).contains("* /ping HOST       ping HOST from the server\r\n"));
    let outs = send(&mut h, a, "/PING  example.org \n");
    assert!(outs.is_empty());
    let cmd = h.svc.poll_command().unwrap();
    assert_eq!((cmd.name, cmd.args.as_str()), ("ping", "example.org"));
    assert!(h.svc.poll_command().is_none());
    assert!(h.svc.notify(cmd.member, "pong\x1b"));
    let outs = crate::tests::drain(&mut h);
    assert_eq!(text(&outs, a), "* pong\r\n");
    send(&mut h, a, "/quit\n");
    assert!(!h.svc.notify(cmd.member, "late"));
}

fn drain(h: &mut Harness<ChatService>) -> Vec<Output> {
    netlab_core::testkit::drain(&mut h.svc)
}

#[test]
fn leave_reason_texts() {
    assert_eq!(LeaveReason::Quit(Some("x".into())).to_string(), "quit: x");
    assert_eq!(LeaveReason::TooSlow.to_string(), "too slow");
    assert_eq!(LeaveReason::Flooding.to_string(), "flooding");
    assert_eq!(LeaveReason::Timeout.to_string(), "timeout");
    assert_eq!(LeaveReason::Closed.to_string(), "closed");
}

#[test]
fn chat_is_send() {
    fn is_send<T: Send>() {}
    is_send::<crate::Chat>();
    is_send::<ChatService>();
}

#[test]
fn who_and_rooms_output_is_bounded() {
    let mut h = harness(config());
    let socks: Vec<SockId> = (0..250).map(|i| join(&mut h, &format!("n{i:03}"))).collect();
    let outs = send(&mut h, socks[0], "/who\n");
    let who = text(&outs, socks[0]);
    let lines: Vec<&str> = who.lines().collect();
    assert_eq!(lines[0], "* 250 in #lobby:");
    assert_eq!(lines.len(), 1 + 200 / 20 + 1);
    assert!(lines[1].starts_with("*   n000 n001 "));
    assert_eq!(*lines.last().unwrap(), "*   ... and 50 more");
    for (i, s) in socks.iter().enumerate().skip(1).take(120) {
        send(&mut h, *s, &format!("/join r{i:03}\n"));
    }
    let rooms = text(&send(&mut h, socks[0], "/rooms\n"), socks[0]);
    let lines: Vec<&str> = rooms.lines().collect();
    assert_eq!(lines[0], "* 121 rooms:");
    assert_eq!(lines.len(), 1 + 100 + 1);
    assert_eq!(*lines.last().unwrap(), "*   ... and 21 more");
}

#[test]
fn dribbled_bytes_do_not_count_as_activity() {
    let mut h = harness(config());
    let a = join(&mut h, "alice");
    for _ in 0..5 {
        h.advance(Duration::from_secs(20));
        send(&mut h, a, "x");
    }
    assert_eq!(h.svc.chat().members(), 0, "timed out while dribbling a partial line");
}

#[test]
fn shutdown_says_goodbye_and_then_no_leave_notices() {
    let mut h = harness(config());
    let a = join(&mut h, "alice");
    let b = join(&mut h, "bob");
    h.svc.handle_shutdown(h.now);
    let outs = drain(&mut h);
    assert_eq!(text(&outs, a), "* server shutting down\r\n");
    assert_eq!(text(&outs, b), "* server shutting down\r\n");
    let outs = h.input(Input::Closed { sock: a, reason: CloseReason::Shutdown });
    assert!(outs.is_empty(), "{outs:?}");
    h.input(Input::Closed { sock: b, reason: CloseReason::Shutdown });
    assert_eq!(h.svc.chat().members(), 0);
}

#[test]
fn greeting_shows_canonical_addresses() {
    let mut h = harness(config());
    let listener = SockId { index: 2, generation: 0 };
    for (peer, shown) in [("[::ffff:10.1.2.3]:999", "10.1.2.3:999"), ("[::1]:5", "[::1]:5")] {
        let sock = h.new_sock();
        let outs = h.input(Input::Accepted { listener, sock, peer: peer.parse().unwrap() });
        assert!(text(&outs, sock).starts_with(&format!("* welcome to netlab chat, {shown}\r\n")));
    }
}
