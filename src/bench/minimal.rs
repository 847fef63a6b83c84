//! `minimal-server`: the smallest correct mio echo loop, hand-written, as the floor for a real loop.
//!
//! No services, no timers, no counters, no budgets: poll, accept, read until `WouldBlock` and write
//! each read straight back. Bytes a full socket did not take wait in the connection's `pending`
//! buffer, and reading that connection stops until they are written (backpressure). The reactor's
//! CPU time per message is compared with this loop's in the same run.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Result;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

const LISTENER: Token = Token(usize::MAX);

struct Conn {
    stream: TcpStream,
    /// Echo bytes the socket did not take yet.
    pending: Vec<u8>,
}

pub fn serve(addr: SocketAddr) -> Result<ExitCode> {
    super::proc::raise_fd_limit();
    let mut poll = Poll::new()?;
    let mut listener = TcpListener::bind(addr)?;
    poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
    log::info!("listening minimal/tcp {}", listener.local_addr()?);
    let mut conns: Slab<Conn> = Slab::new();
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        poll.poll(&mut events, None)?;
        for ev in events.iter() {
            if ev.token() == LISTENER {
                while let Ok((mut stream, _)) = listener.accept() {
                    let _ = stream.set_nodelay(true);
                    let entry = conns.vacant_entry();
                    poll.registry().register(
                        &mut stream,
                        Token(entry.key()),
                        Interest::READABLE | Interest::WRITABLE,
                    )?;
                    entry.insert(Conn { stream, pending: Vec::new() });
                }
                continue;
            }
            let key = ev.token().0;
            let Some(conn) = conns.get_mut(key) else { continue };
            if echo(conn, &mut buf).is_err() {
                let mut conn = conns.remove(key);
                let _ = poll.registry().deregister(&mut conn.stream);
            }
        }
    }
}

/// Flush what is pending, then echo until `WouldBlock`. `Err` closes the connection.
fn echo(conn: &mut Conn, buf: &mut [u8]) -> io::Result<()> {
    if !conn.pending.is_empty() {
        match conn.stream.write(&conn.pending) {
            Ok(n) => drop(conn.pending.drain(..n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(e),
        }
        if !conn.pending.is_empty() {
            return Ok(());
        }
    }
    loop {
        let n = match conn.stream.read(buf) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(e),
        };
        let written = match conn.stream.write(&buf[..n]) {
            Ok(w) => w,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
            Err(e) => return Err(e),
        };
        if written < n {
            conn.pending.extend_from_slice(&buf[written..n]);
            return Ok(());
        }
    }
}
