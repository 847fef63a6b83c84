//! Echo (RFC 862) on threads: a blocking read/write loop per TCP connection, one thread for UDP.
//! The protocol rules come from `netlab-echo` (which datagrams must not be answered).

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, UdpSocket};

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::thread;

use anyhow::{Context, Result};

use super::{Counters, READ_BUF, THREAD_STACK, accept_loop};
use crate::reactor::bound_tcp_listener;

/// Largest datagram: the whole UDP payload range.
const DGRAM_BUF: usize = 64 * 1024;

/// Bind TCP and UDP echo on `addr`, log where, and start their threads.
pub fn start(addr: SocketAddr, max_conns: usize) -> Result<Arc<Counters>> {
    let counters = Arc::new(Counters::default());
    let listener = bound_tcp_listener(addr).with_context(|| format!("echo/tcp: cannot listen on {addr}"))?;
    let udp = crate::reactor::bound_udp(addr).with_context(|| format!("echo/udp: cannot bind {addr}"))?;
    log::info!("listening echo/tcp {}", listener.local_addr()?);
    log::info!("listening echo/udp {}", udp.local_addr()?);
    let c = counters.clone();
    thread::Builder::new()
        .name("echo-accept".into())
        .stack_size(THREAD_STACK)
        .spawn(move || accept_loop("echo", listener, max_conns, c, serve_conn))?;
    let c = counters.clone();
    thread::Builder::new().name("echo-udp".into()).spawn(move || serve_udp(udp, &c))?;
    Ok(counters)
}

/// One connection: read what came, write it all back, until EOF (then the write side is shut
/// down, so the client has everything it sent) or an error.
fn serve_conn(mut stream: TcpStream, counters: &Counters) {
    let mut buf = [0u8; READ_BUF];
    let mut bytes = 0u64;
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) => {
                let _ = stream.shutdown(Shutdown::Write);
                break;
            }
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => {
                log::debug!("echo: read error: {e}");
                counters.errors.fetch_add(1, Relaxed);
                break;
            }
        };
        if let Err(e) = stream.write_all(&buf[..n]) {
            log::debug!("echo: write error: {e}");
            counters.errors.fetch_add(1, Relaxed);
            break;
        }
        bytes += n as u64;
    }
    counters.bytes_in.fetch_add(bytes, Relaxed);
    counters.bytes_out.fetch_add(bytes, Relaxed);
}

/// The UDP socket: every datagram back to its sender, except from ports `netlab_echo` refuses.
fn serve_udp(udp: UdpSocket, counters: &Counters) {
    let mut buf = vec![0u8; DGRAM_BUF];
    loop {
        let (n, from) = match udp.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e) => {
                // ICMP errors from earlier sends surface here; the socket itself is fine.
                log::debug!("echo/udp: recv error: {e}");
                counters.errors.fetch_add(1, Relaxed);
                continue;
            }
        };
        counters.dgrams_in.fetch_add(1, Relaxed);
        counters.bytes_in.fetch_add(n as u64, Relaxed);
        if netlab_echo::is_reflection_risk(from) {
            counters.dgrams_dropped.fetch_add(1, Relaxed);
            log::debug!("echo: dropped a datagram from privileged port {from}");
            continue;
        }
        match udp.send_to(&buf[..n], from) {
            Ok(_) => {
                counters.dgrams_out.fetch_add(1, Relaxed);
                counters.bytes_out.fetch_add(n as u64, Relaxed);
            }
            Err(e) => {
                counters.dgrams_dropped.fetch_add(1, Relaxed);
                log::debug!("echo/udp: send to {from} failed: {e}");
            }
        }
    }
}
