//! Requests on the listening socket: the malformed-packet rule, duplicates, caps, and the checks
//! made before anything is sent (file opened, options agreed).

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use netlab_core::{Output, SockId, SockKind};

use super::{Machine, TftpService, Transfer, printable, verb};
use crate::files::FileSystem;
use crate::options::{Negotiated, negotiate, upload_cap};
use crate::packet::{ErrorCode, Kind, Mode, Packet};
use crate::transfer::{Receiver, Retry, Sender, Status};

impl<F: FileSystem> TftpService<F> {
    /// A datagram on the listening socket.
    pub(super) fn on_request(&mut self, now: Instant, lsock: SockId, from: SocketAddr, data: &[u8]) {
        let opcode = if data.len() >= 2 { u16::from_be_bytes([data[0], data[1]]) } else { 0 };
        let (kind, filename, mode, options) = match Packet::parse(data) {
            Ok(Packet::Request { kind, filename, mode, options }) => (kind, filename, mode, options),
            // Too short to say anything, or a stray packet of some old transfer: never answered.
            Ok(_) | Err(_) if data.len() < 2 || (3..=6).contains(&opcode) => {
                self.counters.malformed += 1;
                log::debug!("tftp: dropped a stray {}-byte datagram from {from}", data.len());
                return;
            }
            Ok(_) => return,
            Err(e) => {
                self.counters.malformed += 1;
                log::debug!("tftp: malformed request from {from}: {e}");
                return self.reply_error(lsock, from, ErrorCode::IllegalOperation, &e.to_string());
            }
        };
        if mode == Mode::Mail {
            self.counters.malformed += 1;
            return self.reply_error(lsock, from, ErrorCode::IllegalOperation, "Mail mode not supported");
        }
        // An upload that is complete and only dallying gives way to the same client's next request
        // (tftp-hpa sends every command of a session from one port).
        if let Some(&Some(sock)) = self.peers.get(&from) {
            if self.active.get(&sock).is_some_and(|t| t.machine.status() == &Status::Complete) {
                self.finish(sock, "ok");
            }
        }
        if self.peers.contains_key(&from) {
            self.counters.duplicate_requests += 1;
            log::debug!("tftp: duplicate request from {from} ignored");
            return;
        }
        let prepared = match self.check_caps(kind, from) {
            Ok(()) => self.prepare(now, kind, filename, mode, &options),
            Err(e) => Err(e),
        };
        match prepared {
            Ok((machine, negotiated)) => {
                let tag = self.next_tag;
                self.next_tag += 1;
                let t = Transfer {
                    peer: from,
                    file: printable(filename),
                    kind,
                    mode,
                    options: negotiated.describe(),
                    started: now,
                    machine,
                    sock: None,
                    timer: None,
                    logged: false,
                };
                self.pending.insert(tag, t);
                self.peers.insert(from, None);
                *self.per_ip.entry(from.ip()).or_default() += 1;
                let ip = self.listener.map_or(self.cfg.addr.ip(), |l| l.local.ip());
                let addr = SocketAddr::new(ip, 0);
                self.out.push_back(Output::Open { tag, kind: SockKind::Udp, addr });
            }
            Err((code, msg)) => {
                self.counters.refused += 1;
                if self.refusal_log.allow(now) {
                    let (name, mode) = (printable(filename), mode.as_str());
                    log::info!("tftp: {from} {} \"{name}\" {mode}: refused: {msg}", verb(kind));
                }
                self.reply_error(lsock, from, code, msg);
            }
        }
    }

    fn check_caps(&self, kind: Kind, from: SocketAddr) -> Result<(), (ErrorCode, &'static str)> {
        if kind == Kind::Write && !self.cfg.allow_upload {
            return Err((ErrorCode::AccessViolation, "Uploads are disabled"));
        }
        if self.transfers() >= self.cfg.max_transfers {
            return Err((ErrorCode::Undefined, "Server busy, try again later"));
        }
        if self.per_ip.get(&from.ip()).copied().unwrap_or(0) >= self.cfg.max_per_client {
            return Err((ErrorCode::Undefined, "Too many transfers from your address"));
        }
        Ok(())
    }

    /// Open the file and agree the options, before anything is sent: no ERROR ever follows an OACK
    /// for a reason known up front.
    fn prepare(
        &mut self,
        now: Instant,
        kind: Kind,
        filename: &str,
        mode: Mode,
        options: &[(&str, &str)],
    ) -> Result<(Machine, Negotiated), (ErrorCode, &'static str)> {
        let cfg = &self.cfg;
        let machine_for = |n: &Negotiated| {
            let retry = Retry::new(now, n.timeout.unwrap_or(cfg.timeout), cfg.max_retries);
            let oack =
                (!n.oack.is_empty()).then(|| Bytes::from(Packet::Oack { options: n.oack_pairs() }.to_vec()));
            (retry, oack)
        };
        match kind {
            Kind::Read => {
                let file = self.fs.open_read(filename).map_err(|e| e.to_tftp())?;
                let n = negotiate(kind, mode, options, Some(file.size()), cfg.max_blksize, None)?;
                let (retry, oack) = machine_for(&n);
                let s = Sender::new(file, mode, n.blksize, n.windowsize, retry, oack);
                Ok((Machine::Send(s), n))
            }
            Kind::Write => {
                let n = negotiate(kind, mode, options, None, cfg.max_blksize, cfg.max_upload)?;
                let (retry, oack) = machine_for(&n);
                let first = oack.unwrap_or_else(|| Bytes::from(crate::packet::ack_packet(0)));
                let file = self.fs.create(filename).map_err(|e| e.to_tftp())?;
                let cap = upload_cap(mode, n.tsize, cfg.max_upload);
                let r = Receiver::new(file, mode, n.blksize, n.windowsize, retry, Some(first), cap);
                Ok((Machine::Recv(r), n))
            }
        }
    }
}

/// Refused requests are logged at info, but a flood of them must not flood the log: at most
/// [`RefusalLog::PER_SECOND`] lines a second, then one line saying how many were left out.
#[derive(Default)]
pub(super) struct RefusalLog {
    /// Start of the current one-second window.
    window: Option<Instant>,
    /// Lines written in it.
    written: u32,
    /// Lines left out in it.
    suppressed: u64,
}

impl RefusalLog {
    const PER_SECOND: u32 = 10;

    fn allow(&mut self, now: Instant) -> bool {
        if self.window.is_none_or(|w| now.saturating_duration_since(w) >= std::time::Duration::from_secs(1)) {
            if self.suppressed > 0 {
                log::info!("tftp: {} more refused requests not logged", self.suppressed);
            }
            *self = RefusalLog { window: Some(now), written: 0, suppressed: 0 };
        }
        if self.written < Self::PER_SECOND {
            self.written += 1;
            true
        } else {
            self.suppressed += 1;
            false
        }
    }
}
