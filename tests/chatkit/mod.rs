//! Helpers for the chat integration tests: a line client, server start-up, common assertions.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::common::Server;

/// How long any single expected line may take to arrive.
pub const LINE_TIMEOUT: Duration = Duration::from_secs(10);

/// A line-oriented test client.
pub struct Client {
    pub writer: TcpStream,
    pub reader: BufReader<TcpStream>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(LINE_TIMEOUT)).unwrap();
        Client { writer: stream.try_clone().unwrap(), reader: BufReader::new(stream) }
    }

    /// Connect, take nickname `nick` and wait until in the lobby.
    pub fn join(addr: SocketAddr, nick: &str) -> Client {
        let mut c = Client::connect(addr);
        let greeting = c.line().expect("greeting");
        assert!(greeting.starts_with("* welcome to netlab chat, 127.0.0.1:"), "{greeting}");
        let port: u16 = greeting.rsplit(':').next().unwrap().parse().unwrap();
        assert_eq!(port, c.writer.local_addr().unwrap().port(), "greeting names the client's port");
        c.send(nick);
        c.expect("* you joined #lobby");
        c
    }

    pub fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\r\n").as_bytes());
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("send");
    }

    /// The next line without its CRLF (every server line must end in CRLF); `None` at EOF.
    pub fn line(&mut self) -> Option<String> {
        let mut buf = Vec::new();
        match self.reader.read_until(b'\n', &mut buf) {
            Ok(0) => None,
            Ok(_) => {
                assert!(buf.ends_with(b"\r\n"), "line without CRLF: {buf:?}");
                buf.truncate(buf.len() - 2);
                Some(String::from_utf8(buf).expect("server sent invalid UTF-8"))
            }
            Err(e) if e.kind() == ErrorKind::ConnectionReset => None,
            Err(e) => panic!("reading a line: {e}"),
        }
    }

    /// Read lines until one contains `needle`; returns it.
    pub fn expect(&mut self, needle: &str) -> String {
        let mut seen = Vec::new();
        loop {
            match self.line() {
                Some(l) if l.contains(needle) => return l,
                Some(l) => seen.push(l),
                None => panic!("EOF while waiting for {needle:?}; saw {seen:?}"),
            }
        }
    }

    /// Read until EOF; returns the lines.
    pub fn until_eof(&mut self) -> Vec<String> {
        std::iter::from_fn(|| self.line()).collect()
    }
}

pub fn start(extra: &[&str]) -> (Server, SocketAddr) {
    let mut args = vec!["--chat", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let server = Server::start(&args);
    let addr = server.addr("chat/tcp");
    (server, addr)
}

/// Wait until the server has only its listener left and no members.
pub fn assert_back_to_baseline(server: &mut Server) {
    let s = server.stats_until(Duration::from_secs(10), |s| {
        s.get("reactor.live_sockets") == Some(&1) && s.get("chat.members") == Some(&0)
    });
    assert_eq!(s.get("reactor.live_sockets"), Some(&1), "{s:?}");
    assert_eq!(s.get("chat.members"), Some(&0), "{s:?}");
    assert_eq!(s.get("chat.conns_now"), Some(&0), "{s:?}");
}

/// `[HH:MM:SS] rest`.
pub fn is_stamped(line: &str, rest: &str) -> bool {
    let b = line.as_bytes();
    line.len() == 11 + rest.len()
        && b[0] == b'['
        && b[3] == b':'
        && b[6] == b':'
        && b[9] == b']'
        && [1, 2, 4, 5, 7, 8].iter().all(|&i| b[i].is_ascii_digit())
        && &line[11..] == rest
}

/// Read whatever is available from a non-blocking socket into `buf`; false at EOF.
pub fn read_some(s: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => return false,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
            Err(e) => panic!("read: {e}"),
        }
    }
}
