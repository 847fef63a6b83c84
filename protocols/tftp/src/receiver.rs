//! [`Receiver`]: the receiving half of a transfer (a write request served, or a client's get). See
//! [`crate::transfer`] for the rules both halves keep.

use std::time::Instant;

use bytes::Bytes;

use crate::files::WriteFile;
use crate::netascii::Decoder;
use crate::packet::{ErrorCode, Mode, Packet, ack_packet, error_packet};
use crate::transfer::{DALLY_TIMEOUTS, MAX_DALLY, Retry, Status, peer_error};

/// Receives a file: DATA in, ACKs out (one per window).
pub struct Receiver {
    /// The file being written; None once committed or aborted.
    file: Option<Box<dyn WriteFile>>,
    /// Netascii decoder (None for octet).
    decoder: Option<Decoder>,
    /// Data bytes per block; a shorter block is the last.
    blksize: usize,
    /// Blocks per ACK.
    windowsize: usize,
    /// The block we want next.
    expected: u16,
    /// In-order blocks received since our last ACK.
    in_window: usize,
    /// The first packet we send (OACK or ACK 0), resent until block 1 arrives. None for a client
    /// that got DATA 1 straight away.
    first: Option<Bytes>,
    /// We already answered an out-of-order or duplicate block since the last progress.
    nacked: bool,
    /// Bytes written to the file (after netascii decoding).
    pub bytes: u64,
    /// Most bytes accepted, or None for no cap.
    max_bytes: Option<u64>,
    /// The deadline.
    pub retry: Retry,
    /// Where the transfer stands.
    status: Status,
    /// Scratch buffer for decoding.
    buf: Vec<u8>,
}

impl Receiver {
    /// A receiver writing into `file`. `first` is the OACK or ACK 0 to send (a server), or None (a
    /// client that feeds the first DATA itself).
    pub fn new(
        file: Box<dyn WriteFile>,
        mode: Mode,
        blksize: usize,
        windowsize: usize,
        retry: Retry,
        first: Option<Bytes>,
        max_bytes: Option<u64>,
    ) -> Self {
        Receiver {
            file: Some(file),
            decoder: (mode == Mode::Netascii).then(Decoder::new),
            blksize,
            windowsize: windowsize.max(1),
            expected: 1,
            in_window: 0,
            first,
            nacked: false,
            bytes: 0,
            max_bytes,
            retry,
            status: Status::Running,
            buf: Vec::new(),
        }
    }

    /// Where the transfer stands.
    pub fn status(&self) -> &Status {
        &self.status
    }

    /// Send the first packet.
    pub fn start(&mut self, now: Instant, out: &mut Vec<Bytes>) {
        out.extend(self.first.clone());
        self.retry.reset(now);
    }

    /// What to resend: the first packet until block 1 arrived, then an ACK of the last block in order.
    fn current_ack(&self) -> Option<Bytes> {
        if self.expected == 1 && self.bytes == 0 && self.first.is_some() {
            return self.first.clone();
        }
        Some(Bytes::from(ack_packet(self.expected.wrapping_sub(1))))
    }

    fn fail(&mut self, out: &mut Vec<Bytes>, code: ErrorCode, msg: &str, reason: &str) {
        out.push(Bytes::from(error_packet(code, msg)));
        self.abort(reason.to_string());
    }

    fn abort(&mut self, reason: String) {
        if let Some(f) = self.file.take() {
            f.abort();
        }
        self.status = Status::Failed(reason);
    }

    /// A packet from the peer.
    pub fn on_packet(&mut self, now: Instant, pkt: &Packet<'_>, out: &mut Vec<Bytes>) {
        match (&self.status, pkt) {
            (Status::Running, Packet::Data { block, data }) => self.on_data(now, *block, data, out),
            // Dallying: our final ACK was lost and the peer resent its last block.
            (Status::Complete, Packet::Data { block, .. }) if *block == self.expected.wrapping_sub(1) => {
                out.extend(self.current_ack())
            }
            (Status::Running, Packet::Error { code, message }) => {
                let after_oack = self.first.is_some() && self.expected == 1;
                let status = peer_error(*code, message, after_oack);
                if let Status::Failed(r) = status {
                    self.abort(r);
                }
            }
            (Status::Running, _) => {
                self.fail(out, ErrorCode::IllegalOperation, "Expected DATA", "unexpected packet")
            }
            _ => {}
        }
    }

    fn on_data(&mut self, now: Instant, block: u16, data: &[u8], out: &mut Vec<Bytes>) {
        if block != self.expected {
            if !self.nacked {
                // Lost or duplicated blocks: tell the sender where we are (RFC 7440 §4).
                self.nacked = true;
                self.in_window = 0;
                out.extend(self.current_ack());
            }
            return;
        }
        if data.len() > self.blksize {
            return self.fail(out, ErrorCode::IllegalOperation, "Block too large", "oversized block");
        }
        self.buf.clear();
        match &mut self.decoder {
            Some(d) => {
                d.decode(data, &mut self.buf);
                if data.len() < self.blksize {
                    d.finish(&mut self.buf);
                }
            }
            None => self.buf.extend_from_slice(data),
        }
        self.bytes += self.buf.len() as u64;
        if self.max_bytes.is_some_and(|m| self.bytes > m) {
            return self.fail(out, ErrorCode::DiskFull, "File too large", "upload over the size cap");
        }
        if let Err(e) = self.file.as_mut().map_or(Ok(()), |f| f.write(&self.buf)) {
            let (code, msg) = e.to_tftp();
            return self.fail(out, code, msg, "write error");
        }
        self.expected = self.expected.wrapping_add(1);
        self.in_window += 1;
        self.nacked = false;
        self.retry.reset(now);
        if data.len() < self.blksize {
            if let Some(Err(e)) = self.file.take().map(|f| f.commit()) {
                let (code, msg) = e.to_tftp();
                return self.fail(out, code, msg, "commit error");
            }
            out.extend(self.current_ack());
            self.status = Status::Complete;
            self.retry.deadline =
                now + (self.retry.base * DALLY_TIMEOUTS).min(MAX_DALLY.max(self.retry.base));
        } else if self.in_window >= self.windowsize {
            self.in_window = 0;
            out.extend(self.current_ack());
        }
    }

    /// The deadline passed: resend our last ACK, end the dally, or give up.
    pub fn on_timeout(&mut self, now: Instant, out: &mut Vec<Bytes>) {
        if now < self.retry.deadline {
            return;
        }
        match self.status {
            Status::Complete => self.status = Status::Finished,
            Status::Running if self.retry.backoff(now) => {
                self.nacked = false;
                self.in_window = 0;
                out.extend(self.current_ack());
            }
            Status::Running => self.abort("timed out".into()),
            _ => {}
        }
    }
}

impl Drop for Receiver {
    /// A receiver dropped before its last block leaves nothing behind.
    fn drop(&mut self) {
        if let Some(f) = self.file.take() {
            f.abort();
        }
    }
}
