//! The example protocol over a real UDP socket.

mod common;

use std::net::UdpSocket;
use std::time::Duration;

#[test]
fn converts_over_udp() {
    let server = common::Server::start(&["--celsius", "127.0.0.1:0"]);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0; 128];
    for (request, reply) in [("36.6", "36.6 C = 97.88 F\n"), ("warm", "error: send a temperature")] {
        sock.send_to(request.as_bytes(), server.addr("celsius/udp")).unwrap();
        let n = sock.recv(&mut buf).unwrap();
        let got = std::str::from_utf8(&buf[..n]).unwrap();
        assert!(got.starts_with(reply), "{request:?} got {got:?}");
    }
}
