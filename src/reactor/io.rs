//! Serving ready sockets (accept, read, receive) and flushing queued output, each within a budget.

use std::io::{ErrorKind, Read, Write};
use std::mem;

use mio::{Interest, Token};

use netlab_core::{CloseReason, Input, SockId};

use super::outbuf::OutBuf;
use super::socket::{Conn, Entry, Sock, tune_stream};
use super::{LINGER, Reactor};

/// Bytes read from one connection per turn, so one busy client cannot starve the rest.
const READ_BUDGET: usize = 64 * 1024;
/// Datagrams received from one socket per turn.
const DGRAM_BUDGET: usize = 64;
/// Connections accepted from one listener per turn.
const ACCEPT_BUDGET: usize = 64;
/// Accepting pauses this long when the process is out of file descriptors.
const ACCEPT_BACKOFF: std::time::Duration = std::time::Duration::from_millis(100);

impl Reactor {
    /// Serve every socket on the ready list once. Sockets that use up their budget, or that are added
    /// while serving, go on the list for the next turn.
    pub(super) fn serve_ready(&mut self) {
        let mut batch = self.ready.take();
        for sock in batch.drain(..) {
            let key = sock.index as usize;
            let Some(entry) = self.slab.get_mut(key) else { continue };
            if self.generations[key] != sock.generation {
                continue;
            }
            entry.queued = false;
            if entry.doomed.is_some() {
                continue;
            }
            match entry.sock {
                Sock::Listener(_) => self.serve_listener(sock),
                Sock::Conn(_) => self.serve_conn(sock),
                Sock::Udp(_) | Sock::Icmp(_) => self.serve_datagrams(sock),
            }
        }
        self.ready.recycle(batch);
    }

    /// Put a socket back on the ready list (its budget ran out but it is still readable).
    fn requeue(&mut self, sock: SockId) {
        if let Some(entry) = self.slab.get_mut(sock.index as usize) {
            if !entry.queued {
                entry.queued = true;
                self.ready.push(sock);
            }
        }
    }

    /// After an accept back-off: serve again every listener that still has connections waiting.
    pub(super) fn requeue_listeners(&mut self) {
        let waiting: Vec<SockId> = self
            .slab
            .iter()
            .filter(|(_, e)| matches!(e.sock, Sock::Listener(_)) && e.readable)
            .map(|(k, _)| SockId { index: k as u32, generation: self.generations[k] })
            .collect();
        for sock in waiting {
            self.requeue(sock);
        }
    }

    fn serve_listener(&mut self, listener: SockId) {
        let key = listener.index as usize;
        for _ in 0..ACCEPT_BUDGET {
            let entry = &mut self.slab[key];
            let service = entry.service;
            let Sock::Listener(l) = &mut entry.sock else { return };
            let (stream, peer) = match l.inner.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    entry.readable = false;
                    return;
                }
                Err(e) if is_resource_exhaustion(&e) => {
                    // Out of descriptors: the connection waits in the backlog; retry shortly.
                    log::warn!("accept on {listener}: {e}; pausing accepts for {ACCEPT_BACKOFF:?}");
                    self.accept_retry = Some(self.now + ACCEPT_BACKOFF);
                    return;
                }
                Err(e) => {
                    // ECONNABORTED and friends: that one connection is gone, the listener is fine.
                    log::debug!("accept on {listener}: {e}");
                    continue;
                }
            };
            if l.conns >= l.limits.max_conns {
                // Full: best-effort refusal, never blocking; dropping the stream closes it.
                let _ = (&stream).write(&l.limits.refusal);
                self.services[service].stats.refused += 1;
                log::debug!("refused {peer} on {listener}: {} connections", l.conns);
                continue;
            }
            l.conns += 1;
            let (pause_above, close_above) = (l.limits.pause_reading_above, l.limits.close_above);
            let mut stream = stream;
            tune_stream(&stream);
            let vacant = self.slab.vacant_entry();
            let ck = vacant.key();
            if let Err(e) = self.poll.registry().register(&mut stream, Token(ck), Interest::READABLE) {
                log::warn!("registering a connection from {peer}: {e}");
                if let Sock::Listener(l) = &mut self.slab[key].sock {
                    l.conns -= 1;
                }
                continue;
            }
            let conn = Conn {
                stream,
                listener,
                out: OutBuf::default(),
                pause_above,
                close_above,
                paused: false,
                write_interest: false,
                read_closed: false,
                closing: None,
                dirty: false,
            };
            vacant.insert(Entry::new(service, Sock::Conn(conn)));
            if self.generations.len() <= ck {
                self.generations.resize(ck + 1, 0);
            }
            let sock = self.sock_id(ck);
            let stats = &mut self.services[service].stats;
            stats.conns_now += 1;
            stats.conns_total += 1;
            log::debug!("accepted {sock} from {peer} on {listener}");
            self.deliver(service, Input::Accepted { listener, sock, peer });
            if self.live_key(listener).is_none() {
                return; // the service closed its listener while handling the connection
            }
        }
        self.requeue(listener);
    }

    fn serve_conn(&mut self, sock: SockId) {
        let key = sock.index as usize;
        let mut buf = mem::take(&mut self.scratch);
        let mut total = 0;
        while let Some(entry) = self.slab.get_mut(key) {
            let service = entry.service;
            let Sock::Conn(c) = &mut entry.sock else { break };
            if entry.writable && !c.out.is_empty() && !c.dirty {
                c.dirty = true;
                self.dirty.push(sock);
            }
            if !entry.readable || entry.doomed.is_some() || c.paused || c.read_closed || c.closing.is_some() {
                break;
            }
            if total >= READ_BUDGET {
                self.requeue(sock);
                break;
            }
            match c.stream.read(&mut buf) {
                Ok(0) => {
                    c.read_closed = true;
                    entry.readable = false;
                    self.deliver(service, Input::Eof { sock });
                    break;
                }
                Ok(n) => {
                    total += n;
                    self.services[service].stats.bytes_in += n as u64;
                    self.deliver(service, Input::Stream { sock, data: &buf[..n] });
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    entry.readable = false;
                    break;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    log::debug!("read from {sock}: {e}");
                    self.services[service].stats.errors += 1;
                    self.doom(key, CloseReason::Error(e.kind()));
                    break;
                }
            }
        }
        self.scratch = buf;
    }

    fn serve_datagrams(&mut self, sock: SockId) {
        let key = sock.index as usize;
        let mut buf = mem::take(&mut self.scratch);
        // ICMP kernel timestamps are wall-clock: they are mapped onto the monotonic clock with a
        // pair of readings taken together, only when an ICMP socket is served.
        let mut clocks = None;
        let mut budget_left = true;
        for n in 0.. {
            if n == DGRAM_BUDGET {
                budget_left = false;
                break;
            }
            let Some(entry) = self.slab.get_mut(key) else { break };
            if entry.doomed.is_some() {
                break;
            }
            let service = entry.service;
            let received = match &entry.sock {
                Sock::Udp(u) => u.recv_from(&mut buf).map(|(n, from)| (0..n, from, Default::default())),
                Sock::Icmp(i) => {
                    let (mono, wall) = *clocks
                        .get_or_insert_with(|| (std::time::Instant::now(), std::time::SystemTime::now()));
                    i.recv(&mut buf, mono, wall).map(|r| (r.range, r.from, r.meta))
                }
                _ => break,
            };
            match received {
                Ok((range, from, meta)) => {
                    let stats = &mut self.services[service].stats;
                    stats.dgrams_in += 1;
                    stats.bytes_in += range.len() as u64;
                    self.deliver(service, Input::Datagram { sock, from, data: &buf[range], meta });
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    entry.readable = false;
                    break;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    // ECONNREFUSED from an earlier send, a malformed raw packet: that datagram only.
                    log::debug!("receive on {sock}: {e}");
                }
            }
        }
        self.scratch = buf;
        if !budget_left {
            self.requeue(sock);
        }
    }

    /// Write the output queued this turn. A connection whose buffer fills gets WRITABLE interest
    /// until it drains; one that drains below half its pause mark is read again.
    pub(super) fn flush(&mut self) {
        let mut batch = self.dirty.take();
        for sock in batch.drain(..) {
            let key = sock.index as usize;
            let Some(entry) = self.slab.get_mut(key) else { continue };
            if self.generations[key] != sock.generation {
                continue;
            }
            let service = entry.service;
            let Sock::Conn(c) = &mut entry.sock else { continue };
            c.dirty = false;
            if entry.doomed.is_some() || !entry.writable || c.out.is_empty() {
                continue;
            }
            let blocked = match c.out.write_to(&mut c.stream) {
                Ok(n) => {
                    self.services[service].stats.bytes_out += n as u64;
                    !c.out.is_empty()
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => true,
                Err(e) => {
                    log::debug!("write to {sock}: {e}");
                    self.services[service].stats.errors += 1;
                    self.doom(key, CloseReason::Error(e.kind()));
                    continue;
                }
            };
            if blocked != c.write_interest {
                let interest =
                    if blocked { Interest::READABLE | Interest::WRITABLE } else { Interest::READABLE };
                if let Err(e) = self.poll.registry().reregister(&mut c.stream, Token(key), interest) {
                    log::warn!("reregistering {sock}: {e}");
                    self.doom(key, CloseReason::Error(e.kind()));
                    continue;
                }
                c.write_interest = blocked;
            }
            entry.writable = !blocked;
            if c.out.is_empty() {
                if let Some(reason) = c.closing {
                    self.doom(key, reason);
                    continue;
                }
            }
            if c.paused && c.out.len() <= c.pause_above / 2 {
                c.paused = false;
                if entry.readable {
                    self.requeue(sock);
                }
            }
        }
        self.dirty.recycle(batch);
    }

    /// Close a socket: connections with pending output (and `flush`) drain first, for a bounded
    /// time; everything else is doomed at once.
    pub(super) fn close_key(&mut self, key: usize, flush: bool, reason: CloseReason) {
        let sock = self.sock_id(key);
        let Some(entry) = self.slab.get_mut(key) else { return };
        if let Sock::Conn(c) = &mut entry.sock {
            if flush && !c.out.is_empty() && entry.doomed.is_none() {
                if c.closing.is_none() {
                    self.linger.insert(self.now + LINGER, sock);
                }
                c.closing = Some(reason);
                if !c.dirty {
                    c.dirty = true;
                    self.dirty.push(sock);
                }
                return;
            }
            c.out.clear();
        }
        self.doom(key, reason);
    }

    /// The current id of a slab key.
    pub(super) fn sock_id(&self, key: usize) -> SockId {
        SockId { index: key as u32, generation: self.generations[key] }
    }
}

/// Errors that mean "no descriptor or memory for a new connection now", not "this listener is broken".
fn is_resource_exhaustion(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM))
}
