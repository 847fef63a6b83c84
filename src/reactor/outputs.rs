//! Applying a service's outputs: open sockets, queue writes, send datagrams, close.

use std::io::ErrorKind;
use std::net::SocketAddr;

use bytes::Bytes;
use mio::{Interest, Token};

use netlab_core::{CloseReason, OpenError, Opened, Output, SockId, SockKind, StreamLimits};

use super::icmp::IcmpSocket;
use super::socket::{self, Entry, Listener, Sock};
use super::{Deferred, Reactor};

impl Reactor {
    /// Apply one output of service `s`. Outputs naming a socket that is gone, or that belongs to
    /// another service, are ignored: they are normal after a close.
    pub(super) fn apply(&mut self, s: usize, out: Output) {
        match out {
            Output::Listen { tag, kind, addr, limits } => {
                let result = self.open(s, kind, addr, Some(limits));
                self.deferred.push_back((s, Deferred::Opened { tag, result }));
            }
            Output::Open { tag, kind, addr } => {
                let result = self.open(s, kind, addr, None);
                self.deferred.push_back((s, Deferred::Opened { tag, result }));
            }
            Output::Write { sock, data } => self.write(s, sock, data),
            Output::SendTo { sock, to, data } => self.send_to(s, sock, to, &data),
            Output::Close { sock, flush } => {
                if let Some(key) = self.owned_key(s, sock) {
                    self.close_key(key, flush, CloseReason::Requested);
                }
            }
        }
    }

    /// Open, register and insert a socket. `limits` is `Some` for a public `Listen`, whose address
    /// is logged and whose failure at start-up stops the server.
    fn open(
        &mut self,
        s: usize,
        kind: SockKind,
        addr: SocketAddr,
        limits: Option<StreamLimits>,
    ) -> Result<Opened, OpenError> {
        let name = self.services[s].svc.name();
        let public = limits.is_some();
        let opened = if self.shutdown_deadline.is_some() {
            Err(std::io::Error::other("shutting down"))
        } else {
            self.open_socket(s, kind, addr, limits)
        };
        match opened {
            Ok(opened) => {
                let proto = if kind == SockKind::TcpListener { "tcp" } else { "udp" };
                if public {
                    log::info!("listening {name}/{proto} {}", opened.local);
                } else {
                    log::debug!("opened {} {kind:?} {} for {name}", opened.sock, opened.local);
                }
                Ok(opened)
            }
            Err(e) => {
                if public && self.starting && self.startup_error.is_none() {
                    self.startup_error = Some(anyhow::anyhow!("cannot listen on {addr} for {name}: {e}"));
                } else if public {
                    log::warn!("{name}: cannot open {kind:?} on {addr}: {e}");
                } else {
                    // A private socket's service hears of it and decides (ping tries another kind).
                    log::debug!("{name}: cannot open {kind:?} on {addr}: {e}");
                }
                Err(OpenError::from(&e))
            }
        }
    }

    fn open_socket(
        &mut self,
        s: usize,
        kind: SockKind,
        addr: SocketAddr,
        limits: Option<StreamLimits>,
    ) -> std::io::Result<Opened> {
        let limits_given = limits.is_some();
        let (sock, local) = match kind {
            SockKind::TcpListener => {
                let inner = socket::tcp_listener(addr)?;
                let local = inner.local_addr()?;
                let limits = limits.unwrap_or_default();
                (Sock::Listener(Listener { inner, limits, conns: 0 }), local)
            }
            SockKind::Udp => {
                let u = socket::udp(addr)?;
                let local = u.local_addr()?;
                (Sock::Udp(u), local)
            }
            SockKind::Icmp { v6, raw, ttl } => {
                let i = IcmpSocket::open(v6, raw, ttl)?;
                let local = i.local_addr();
                (Sock::Icmp(i), local)
            }
        };
        let vacant = self.slab.vacant_entry();
        let key = vacant.key();
        let mut entry = Entry::new(s, sock);
        entry.public = limits_given;
        self.poll.registry().register(entry.source(), Token(key), Interest::READABLE)?;
        vacant.insert(entry);
        if self.generations.len() <= key {
            self.generations.resize(key + 1, 0);
        }
        Ok(Opened { sock: self.sock_id(key), local })
    }

    /// Queue bytes on a connection; past its hard limit the connection is closed as too slow, past
    /// its pause mark reading from it stops until it drains.
    fn write(&mut self, s: usize, sock: SockId, data: Bytes) {
        let Some(key) = self.owned_key(s, sock) else { return };
        let Sock::Conn(c) = &mut self.slab[key].sock else { return };
        c.out.push(data);
        if c.out.len() > c.close_above {
            log::debug!("{sock}: {} bytes pending, over the limit: closing", c.out.len());
            c.out.clear();
            self.doom(key, CloseReason::OutputLimit);
            return;
        }
        if c.out.len() > c.pause_above {
            c.paused = true;
        }
        if !c.dirty {
            c.dirty = true;
            self.dirty.push(sock);
        }
    }

    /// Send one datagram now. A full buffer drops it (counted); other errors are reported back.
    fn send_to(&mut self, s: usize, sock: SockId, to: SocketAddr, data: &[u8]) {
        let Some(key) = self.owned_key(s, sock) else { return };
        let result = match &self.slab[key].sock {
            Sock::Udp(u) => u.send_to(data, to),
            Sock::Icmp(i) => i.send_to(data, to),
            _ => return,
        };
        let stats = &mut self.services[s].stats;
        match result {
            Ok(n) => {
                stats.dgrams_out += 1;
                stats.bytes_out += n as u64;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => stats.dgrams_dropped += 1,
            Err(e) => {
                stats.errors += 1;
                log::debug!("send on {sock} to {to}: {e}");
                self.deferred.push_back((s, Deferred::SendFailed { sock, to, error: OpenError::from(&e) }));
            }
        }
    }

    /// The key of a live socket owned by service `s`.
    fn owned_key(&self, s: usize, sock: SockId) -> Option<usize> {
        let key = self.live_key(sock)?;
        if self.slab[key].service == s {
            Some(key)
        } else {
            log::warn!("{} named {sock}, which it does not own", self.services[s].svc.name());
            None
        }
    }
}
