//! Opening thousands of client connections quickly, from several loopback source addresses.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use socket2::{Domain, Protocol, Socket, Type};

/// Connects in flight at once: enough to fill the server's backlog quickly, few enough that a
/// threaded server creating a thread per accept is not buried under retransmitted SYNs.
const CONNECTS_IN_FLIGHT: usize = 512;
/// Source addresses 127.0.0.2 ..= 127.0.0.(1 + SOURCE_ADDRS): each has its own ~28,000 ephemeral
/// ports, so 10,000+ connections (and the TIME_WAITs of earlier runs) never run out.
const SOURCE_ADDRS: u8 = 8;
/// The whole connect phase gives up after this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(60);

/// The source address for connection `i` to `target`: spread over 127.0.0.2.. for IPv4 loopback.
pub fn source_for(target: SocketAddr, i: usize) -> Option<SocketAddr> {
    match target.ip() {
        IpAddr::V4(ip) if ip.is_loopback() => {
            Some(SocketAddr::from((Ipv4Addr::new(127, 0, 0, 2 + (i % SOURCE_ADDRS as usize) as u8), 0)))
        }
        _ => None,
    }
}

/// Ask the kernel to pick the source port at `connect`, not at `bind` (IP_BIND_ADDRESS_NO_PORT):
/// then a port only needs to be unique per destination, and ports in TIME_WAIT from earlier runs are
/// reused on loopback. Best effort: without it, bind picks a port as usual.
fn no_port_at_bind(s: &Socket) {
    use std::os::fd::AsRawFd;
    let one: libc::c_int = 1;
    // SAFETY: setsockopt on a socket we own, with a valid int option value.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// Start a non-blocking connect from the source address for `i`.
fn start(target: SocketAddr, i: usize) -> io::Result<TcpStream> {
    let s = Socket::new(Domain::for_address(target), Type::STREAM, Some(Protocol::TCP))?;
    s.set_nonblocking(true)?;
    s.set_tcp_nodelay(true)?;
    if let Some(src) = source_for(target, i) {
        no_port_at_bind(&s);
        s.bind(&src.into())?;
    }
    match s.connect(&target.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    Ok(TcpStream::from_std(s.into()))
}

/// Open `n` connections to `target`, registered on `poll` for READABLE|WRITABLE with tokens
/// `0..n`. Returns them all, or fails if any could not connect (the result would not be `n`).
/// `tick` is called now and then with the number connected so far.
pub fn connect_all(
    poll: &mut Poll,
    target: SocketAddr,
    n: usize,
    mut tick: impl FnMut(usize),
) -> Result<Vec<TcpStream>> {
    let mut conns: Vec<Option<TcpStream>> = Vec::with_capacity(n);
    let mut up = vec![false; n];
    let (mut started, mut done) = (0usize, 0usize);
    let mut events = Events::with_capacity(1024);
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    while done < n {
        while started < n && started - done < CONNECTS_IN_FLIGHT {
            let mut s = start(target, started)?;
            poll.registry().register(&mut s, Token(started), Interest::READABLE | Interest::WRITABLE)?;
            conns.push(Some(s));
            started += 1;
        }
        if Instant::now() > deadline {
            bail!("only {done} of {n} connections were up after {CONNECT_TIMEOUT:?}");
        }
        poll.poll(&mut events, Some(Duration::from_millis(100)))?;
        for ev in events.iter() {
            let i = ev.token().0;
            if i >= conns.len() || up[i] || !(ev.is_writable() || ev.is_error()) {
                continue;
            }
            let Some(s) = &conns[i] else { continue };
            if let Ok(Some(e)) | Err(e) = s.take_error() {
                bail!("connection {i} to {target} failed: {e}");
            }
            match s.peer_addr() {
                Ok(_) => {
                    up[i] = true;
                    done += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::NotConnected => {}
                Err(e) => bail!("connection {i} to {target} failed: {e}"),
            }
        }
        tick(done);
    }
    Ok(conns.into_iter().flatten().collect())
}
