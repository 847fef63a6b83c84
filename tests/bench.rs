//! `netlab bench` works against both models on tiny scenarios, and the threaded model is correct
//! on the wire (echo over TCP and UDP, chat join and message). No timing assertions: only that the
//! tool runs, checks what it should, and reports something sane.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream, UdpSocket};
use std::process::Command;
use std::time::Duration;

use common::{Server, netlab_bin};

const CHAT_FLAGS: [&str; 4] = ["--chat-flood-rate", "1000", "--chat-flood-burst", "1000"];

fn reactor(args: &[&str]) -> Server {
    Server::start(args)
}

fn threaded(args: &[&str]) -> Server {
    let mut all = vec!["--model", "threaded"];
    all.extend_from_slice(args);
    Server::start(&all)
}

/// Run `netlab bench ARGS --json`; assert exit 0 and return the parsed result.
fn bench(args: &[&str]) -> serde_json::Value {
    let out =
        Command::new(netlab_bin()).arg("bench").args(args).arg("--json").output().expect("run netlab bench");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "netlab bench {args:?} failed: {stderr}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("bad JSON ({e}): {:?}", out.stdout))
}

fn num(v: &serde_json::Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or_else(|| panic!("no number {key} in {v}"))
}

#[test]
fn tcp_echo_runs_against_both_models() {
    for (name, mut server) in
        [("reactor", reactor(&["--echo", "127.0.0.1:0"])), ("threaded", threaded(&["--echo", "127.0.0.1:0"]))]
    {
        let target = server.addr("echo/tcp").to_string();
        let pid = server.pid().to_string();
        let r = bench(&[
            "tcp-echo",
            "--target",
            &target,
            "--conns",
            "4",
            "--duration",
            "1s",
            "--server-pid",
            &pid,
            "--size",
            "100",
            "--depth",
            "2",
        ]);
        assert!(num(&r, "msgs") > 0.0, "{name}: {r}");
        assert_eq!(num(&r, "errors"), 0.0, "{name}: {r}");
        assert_eq!(num(&r, "connected"), 4.0, "{name}: {r}");
        assert!(num(&r, "server_cpu_s") >= 0.0, "{name}: {r}");
        let threads = num(&r, "server_threads");
        if name == "reactor" {
            assert_eq!(threads, 1.0, "the reactor serves from one thread: {r}");
        } else {
            assert!(threads >= 5.0, "threaded: a thread per connection plus listeners: {r}");
        }
        assert!(server.terminate(Duration::from_secs(5)).success(), "{name} did not exit cleanly");
    }
}

#[test]
fn udp_echo_and_idle_run_against_both_models() {
    for mut server in [reactor(&["--echo", "127.0.0.1:0"]), threaded(&["--echo", "127.0.0.1:0"])] {
        let udp = server.addr("echo/udp").to_string();
        let r = bench(&["udp-echo", "--target", &udp, "--conns", "2", "--depth", "2", "--duration", "1s"]);
        assert!(num(&r, "msgs") > 0.0, "{r}");
        assert_eq!(num(&r, "errors"), 0.0, "{r}");
        let tcp = server.addr("echo/tcp").to_string();
        let pid = server.pid().to_string();
        let r =
            bench(&["idle", "--target", &tcp, "--conns", "50", "--duration", "0.2s", "--server-pid", &pid]);
        assert_eq!(num(&r, "connected"), 50.0, "every idle connection echoed its byte at the end: {r}");
        assert!(num(&r, "server_fds") >= 50.0, "{r}");
        assert!(r["rss_per_conn"].is_number(), "{r}");
        server.terminate(Duration::from_secs(5));
    }
}

#[test]
fn chat_runs_against_both_models_and_every_line_arrives() {
    let args = ["--chat", "127.0.0.1:0", CHAT_FLAGS[0], CHAT_FLAGS[1], CHAT_FLAGS[2], CHAT_FLAGS[3]];
    for server in [reactor(&args), threaded(&args)] {
        let target = server.addr("chat/tcp").to_string();
        let r = bench(&[
            "chat",
            "--target",
            &target,
            "--conns",
            "6",
            "--senders",
            "2",
            "--rate",
            "20",
            "--duration",
            "1s",
        ]);
        // 2 senders × ~20 lines × 5 receivers each.
        assert!(num(&r, "msgs") >= 100.0, "{r}");
        assert_eq!(num(&r, "lost"), 0.0, "{r}");
        assert_eq!(num(&r, "errors"), 0.0, "{r}");
    }
}

#[test]
fn bench_refuses_non_loopback_targets() {
    let out =
        Command::new(netlab_bin()).args(["bench", "tcp-echo", "--target", "192.0.2.1:7"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));
}

#[test]
fn report_is_written_from_results() {
    let server = reactor(&["--echo", "127.0.0.1:0"]);
    let dir = std::env::temp_dir().join(format!("netlab-bench-report-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let target = server.addr("echo/tcp").to_string();
    let mut lines = String::new();
    for label in ["reactor", "threaded"] {
        let r =
            bench(&["tcp-echo", "--target", &target, "--conns", "2", "--duration", "0.3s", "--label", label]);
        lines.push_str(&format!("{r}\n"));
    }
    let results = dir.join("results.jsonl");
    std::fs::write(&results, lines).unwrap();
    let out = dir.join("REPORT.md");
    let status = Command::new(netlab_bin())
        .args(["bench", "report", "--results", results.to_str().unwrap(), "--out", out.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(status.success());
    let md = std::fs::read_to_string(&out).unwrap();
    assert!(md.contains("| 2 | reactor |") && md.contains("| 2 | threaded |"), "{md}");
    let svg = std::fs::read_to_string(dir.join("echo_throughput.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("reactor"), "{svg}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn threaded_echo_returns_every_byte_and_flushes_on_half_close() {
    let server = threaded(&["--echo", "127.0.0.1:0"]);
    let mut s = TcpStream::connect(server.addr("echo/tcp")).unwrap();
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let mut reader = s.try_clone().unwrap();
    let expect = data.clone();
    let back = std::thread::spawn(move || {
        let mut got = Vec::new();
        reader.read_to_end(&mut got).unwrap();
        got
    });
    s.write_all(&data).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    // EOF after everything: the server flushed what it owed, then closed its side.
    assert!(back.join().unwrap() == expect, "echoed bytes differ");

    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    udp.send_to(b"ping", server.addr("echo/udp")).unwrap();
    let mut buf = [0u8; 16];
    let (n, from) = udp.recv_from(&mut buf).unwrap();
    assert_eq!((&buf[..n], from), (&b"ping"[..], server.addr("echo/udp")));
}

#[test]
fn threaded_chat_join_and_message() {
    let server = threaded(&["--chat", "127.0.0.1:0"]);
    let addr = server.addr("chat/tcp");
    let join = |nick: &str| {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        (&s).write_all(format!("{nick}\n").as_bytes()).unwrap();
        wait_line(&mut r, "* you joined #lobby");
        (s, r)
    };
    let (_alice, mut alice_r) = join("alice");
    let (mut bob, mut bob_r) = join("bob");
    wait_line(&mut alice_r, "* bob joined #lobby");
    bob.write_all(b"hello alice\n").unwrap();
    assert!(wait_line(&mut alice_r, "bob: hello alice").starts_with('['));
    bob.write_all(b"/quit\n").unwrap();
    wait_line(&mut bob_r, "* bye");
    wait_line(&mut alice_r, "* bob left #lobby");
}

/// Read lines until one contains `needle`; panics at EOF or after the read timeout.
fn wait_line(r: &mut impl BufRead, needle: &str) -> String {
    let mut line = String::new();
    loop {
        line.clear();
        let n = r.read_line(&mut line).unwrap_or_else(|e| panic!("waiting for {needle:?}: {e}"));
        assert!(n > 0, "EOF while waiting for {needle:?}");
        if line.contains(needle) {
            return line;
        }
    }
}

#[test]
fn tftp_downloads_are_checked() {
    let dir = std::env::temp_dir().join(format!("netlab-bench-tftp-root-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let data: Vec<u8> = (0..100_000u32).map(|i| (i * 13 % 256) as u8).collect();
    std::fs::write(dir.join("f.bin"), &data).unwrap();
    let server = reactor(&["--tftp", "127.0.0.1:0", "--tftp-root", dir.to_str().unwrap()]);
    let target = server.addr("tftp/udp").to_string();
    let expect = dir.join("f.bin");
    let r = bench(&[
        "tftp",
        "--target",
        &target,
        "--conns",
        "2",
        "--file",
        "f.bin",
        "--expect",
        expect.to_str().unwrap(),
        "--duration",
        "0.5s",
    ]);
    assert!(num(&r, "msgs") >= 2.0, "{r}");
    assert_eq!(num(&r, "errors"), 0.0, "{r}");
    // A wrong expectation is caught: every download then counts as an error, and the exit is 1.
    std::fs::write(dir.join("other.bin"), b"not the same").unwrap();
    let other = dir.join("other.bin");
    let out = Command::new(netlab_bin())
        .args([
            "bench",
            "tftp",
            "--target",
            &target,
            "--conns",
            "1",
            "--file",
            "f.bin",
            "--duration",
            "0.1s",
            "--json",
        ])
        .arg("--expect")
        .arg(&other)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(num(&r, "errors") >= 1.0, "{r}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn threaded_chat_drops_a_member_that_never_reads() {
    let server =
        threaded(&["--chat", "127.0.0.1:0", "--chat-flood-rate", "1000000", "--chat-flood-burst", "1000000"]);
    let addr = server.addr("chat/tcp");
    // The slow member joins, then never reads again.
    let slow = TcpStream::connect(addr).unwrap();
    (&slow).write_all(b"slow\n").unwrap();
    let mut watch = TcpStream::connect(addr).unwrap();
    watch.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    watch.write_all(b"watch\n").unwrap();
    let mut watch_r = watch.try_clone().unwrap();
    wait_bytes(&mut watch_r, b"* you joined #lobby");
    // The sender's lines fill the slow member's socket buffers, then its capped outbox.
    let mut sender = TcpStream::connect(addr).unwrap();
    sender.write_all(b"sender\n").unwrap();
    let line = format!("{}\n", "x".repeat(1000));
    let drain = std::thread::spawn(move || {
        // The watcher reads in large chunks, so only the slow member falls behind.
        wait_bytes(&mut watch_r, b"* slow left #lobby (too slow)")
    });
    for _ in 0..30_000 {
        if sender.write_all(line.as_bytes()).is_err() {
            break;
        }
        if drain.is_finished() {
            break;
        }
    }
    drain.join().expect("the slow member is dropped as too slow while the others are served");
    drop(slow);
}

/// Read raw chunks until `needle` has been seen (fast even in a debug build); panics at EOF.
fn wait_bytes(r: &mut impl Read, needle: &[u8]) {
    let mut buf = vec![0u8; 256 * 1024];
    let mut tail: Vec<u8> = Vec::new();
    loop {
        let n = r.read(&mut buf).unwrap_or_else(|e| panic!("waiting for {needle:?}: {e}"));
        assert!(n > 0, "EOF while waiting for {:?}", String::from_utf8_lossy(needle));
        tail.extend_from_slice(&buf[..n]);
        if tail.windows(needle.len()).any(|w| w == needle) {
            return;
        }
        let keep = tail.len().saturating_sub(needle.len());
        tail.drain(..keep);
    }
}

#[test]
fn bad_rates_and_durations_are_refused_not_run() {
    for args in [
        ["chat", "--rate", "inf"],
        ["chat", "--rate", "NaN"],
        ["chat", "--rate", "1e12"],
        ["chat", "--rate", "0"],
        ["tcp-echo", "--duration", "0s"],
    ] {
        let out = Command::new(netlab_bin())
            .arg("bench")
            .args(args)
            .args(["--target", "127.0.0.1:9", "--conns", "2"])
            .output()
            .expect("run netlab bench");
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
}
