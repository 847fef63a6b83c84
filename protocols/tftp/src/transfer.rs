//! The per-transfer state machines: [`Sender`] (a read request served, or a client's put) and
//! [`Receiver`] (a write request served, or a client's get). Both are sans-IO: packets come in with
//! `now`, packets to send go out into a `Vec<Bytes>`, and [`Retry`] holds the one deadline.
//!
//! Rules both keep:
//! - A timeout resends what is outstanding (the whole unacknowledged window, or the last ACK), doubles
//!   the timeout up to [`MAX_RTO`], and gives up after `max_retries` resends: no transfer lives forever.
//! - A duplicate or stale ACK never causes a send and never moves the deadline (the Sorcerer's
//!   Apprentice bug, RFC 1123 §4.2.3.1).
//! - Block numbers are 16 bits and wrap from 65535 to 0, so any size transfers at any blksize.
//! - A fatal error sends one ERROR packet (never in answer to an ERROR) and ends the transfer.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::files::{FsError, ReadFile, WriteFile};
use crate::netascii::{Decoder, Encoder};
use crate::packet::{ErrorCode, Mode, Packet, ack_packet, data_packet, error_packet};

/// Longest a single retransmit timeout grows to by doubling.
pub const MAX_RTO: Duration = Duration::from_secs(16);

/// How many base timeouts a receiver lingers after its final ACK, re-acknowledging a resent last
/// block: long enough to cover the sender's first two resends (1 + 2 timeouts).
pub const DALLY_TIMEOUTS: u32 = 4;

/// Upper bound on the dally, whatever timeout the client negotiated.
pub const MAX_DALLY: Duration = Duration::from_secs(10);

/// Where a transfer stands.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Status {
    /// Still moving data.
    Running,
    /// All data is through (a receiver has committed the file); the receiver lingers one timeout to
    /// re-acknowledge a resent final block. A client may stop here.
    Complete,
    /// Done, successfully.
    Finished,
    /// Ended by an error (ours or the peer's).
    Failed(String),
}

/// Timeout and retry state: one deadline per transfer.
#[derive(Clone, Debug)]
pub struct Retry {
    /// The first timeout, restored after every bit of progress.
    pub(crate) base: Duration,
    /// The current timeout (doubles on each resend).
    rto: Duration,
    /// Resends since the last progress.
    retries: u32,
    /// Resends allowed before giving up.
    max_retries: u32,
    /// When the next timeout fires.
    pub deadline: Instant,
}

impl Retry {
    /// Start with timeout `base`, allowing `max_retries` resends.
    pub fn new(now: Instant, base: Duration, max_retries: u32) -> Self {
        Retry { base, rto: base, retries: 0, max_retries, deadline: now + base }
    }

    /// Progress: back to the base timeout.
    pub(crate) fn reset(&mut self, now: Instant) {
        self.rto = self.base;
        self.retries = 0;
        self.deadline = now + self.rto;
    }

    /// A timeout fired: false if the retries are used up, else the deadline moves out (doubled).
    pub(crate) fn backoff(&mut self, now: Instant) -> bool {
        if self.retries >= self.max_retries {
            return false;
        }
        self.retries += 1;
        self.rto = (self.rto * 2).min(MAX_RTO.max(self.base));
        self.deadline = now + self.rto;
        true
    }

    /// The current timeout.
    pub fn rto(&self) -> Duration {
        self.rto
    }
}

/// Reads a file block by block, netascii-encoding if asked.
struct BlockSource {
    file: Box<dyn ReadFile>,
    /// File offset of the next raw read.
    offset: u64,
    /// Netascii encoder (None for octet).
    encoder: Option<Encoder>,
    /// Raw bytes read ahead for the encoder, and how many of them are used.
    raw: Vec<u8>,
    raw_used: usize,
}

impl BlockSource {
    /// The next block of at most `blksize` bytes; shorter means it is the last.
    fn next(&mut self, blksize: usize) -> Result<Vec<u8>, FsError> {
        let mut block = Vec::with_capacity(blksize);
        match &mut self.encoder {
            None => {
                block.resize(blksize, 0);
                let mut n = 0;
                while n < blksize {
                    let got = self.file.read_at(self.offset, &mut block[n..])?;
                    if got == 0 {
                        break;
                    }
                    n += got;
                    self.offset += got as u64;
                }
                block.truncate(n);
            }
            Some(enc) => loop {
                let used = enc.encode(&self.raw[self.raw_used..], &mut block, blksize);
                self.raw_used += used;
                if block.len() >= blksize {
                    break;
                }
                self.raw.resize(blksize, 0);
                let got = self.file.read_at(self.offset, &mut self.raw)?;
                self.raw.truncate(got);
                self.raw_used = 0;
                self.offset += got as u64;
                if got == 0 {
                    enc.encode(&[], &mut block, blksize); // flush a pending byte, if any
                    break;
                }
            },
        }
        Ok(block)
    }
}

/// Sends a file: DATA out, ACKs in, a window of `windowsize` blocks in flight.
pub struct Sender {
    source: BlockSource,
    blksize: usize,
    windowsize: usize,
    /// Sent, unacknowledged packets with their block numbers, oldest first. Block 0 is the OACK.
    window: VecDeque<(u16, Bytes)>,
    /// Number of the next block to read.
    next_block: u16,
    /// The last (short) block has been read.
    eof: bool,
    /// Our OACK is out and not yet acknowledged.
    oack_pending: bool,
    /// Data bytes read from the file and sent.
    pub bytes: u64,
    /// The deadline.
    pub retry: Retry,
    status: Status,
}

impl Sender {
    /// A sender for `file`. With `oack`, that packet is sent first and must be acknowledged as block
    /// 0; without it, block 1 goes out at once.
    pub fn new(
        file: Box<dyn ReadFile>,
        mode: Mode,
        blksize: usize,
        windowsize: usize,
        retry: Retry,
        oack: Option<Bytes>,
    ) -> Self {
        let encoder = (mode == Mode::Netascii).then(Encoder::new);
        let source = BlockSource { file, offset: 0, encoder, raw: Vec::new(), raw_used: 0 };
        let mut window = VecDeque::new();
        let oack_pending = oack.is_some();
        if let Some(oack) = oack {
            window.push_back((0, oack));
        }
        Sender {
            source,
            blksize,
            windowsize: windowsize.max(1),
            window,
            next_block: 1,
            eof: false,
            oack_pending,
            bytes: 0,
            retry,
            status: Status::Running,
        }
    }

    /// Where the transfer stands.
    pub fn status(&self) -> &Status {
        &self.status
    }

    /// Send the first packet(s).
    pub fn start(&mut self, now: Instant, out: &mut Vec<Bytes>) {
        if self.window.is_empty() {
            self.fill(out);
        } else {
            out.extend(self.window.iter().map(|(_, p)| p.clone()));
        }
        self.retry.reset(now);
    }

    /// Read blocks until the window is full or the file is done, sending each.
    fn fill(&mut self, out: &mut Vec<Bytes>) {
        while self.window.len() < self.windowsize && !self.eof {
            let block = match self.source.next(self.blksize) {
                Ok(b) => b,
                Err(e) => return self.fail(out, e.to_tftp().0, e.to_tftp().1, "read error"),
            };
            self.eof = block.len() < self.blksize;
            self.bytes += block.len() as u64;
            let pkt = Bytes::from(data_packet(self.next_block, &block));
            out.push(pkt.clone());
            self.window.push_back((self.next_block, pkt));
            self.next_block = self.next_block.wrapping_add(1);
        }
    }

    fn fail(&mut self, out: &mut Vec<Bytes>, code: ErrorCode, msg: &str, reason: &str) {
        out.push(Bytes::from(error_packet(code, msg)));
        self.status = Status::Failed(reason.to_string());
    }

    /// A packet from the peer.
    pub fn on_packet(&mut self, now: Instant, pkt: &Packet<'_>, out: &mut Vec<Bytes>) {
        if self.status != Status::Running {
            return;
        }
        match pkt {
            Packet::Ack { block } => self.on_ack(now, *block, out),
            Packet::Error { code, message } => self.status = peer_error(*code, message, self.oack_pending),
            _ => self.fail(out, ErrorCode::IllegalOperation, "Expected ACK", "unexpected packet"),
        }
    }

    fn on_ack(&mut self, now: Instant, block: u16, out: &mut Vec<Bytes>) {
        let Some(&(first, _)) = self.window.front() else { return };
        let acked = block.wrapping_sub(first) as usize + 1;
        if acked > self.window.len() {
            return; // duplicate or stale: no send, no timer change
        }
        self.window.drain(..acked);
        self.oack_pending = false;
        // Anything still outstanding was lost on the way (the peer acknowledged short of it).
        out.extend(self.window.iter().map(|(_, p)| p.clone()));
        self.fill(out);
        if self.window.is_empty() && self.eof {
            self.status = Status::Finished;
        }
        self.retry.reset(now);
    }

    /// The deadline passed: resend the window, or give up.
    pub fn on_timeout(&mut self, now: Instant, out: &mut Vec<Bytes>) {
        if self.status != Status::Running || now < self.retry.deadline {
            return;
        }
        if !self.retry.backoff(now) {
            self.status = Status::Failed("timed out".into());
            return;
        }
        out.extend(self.window.iter().map(|(_, p)| p.clone()));
    }
}

/// The status after an ERROR from the peer. ERROR 8 in answer to our OACK is a client declining
/// the options (UEFI firmware asks for tsize this way), not a failure worth a warning.
fn peer_error(code: ErrorCode, message: &str, after_oack: bool) -> Status {
    let msg: String = message.chars().take(80).filter(|c| !c.is_control()).collect();
    if code == ErrorCode::OptionRefused && after_oack {
        Status::Failed(format!("options declined by peer: {msg}"))
    } else {
        Status::Failed(format!("peer error {}: {msg}", code.code()))
    }
}

/// Receives a file: DATA in, ACKs out (one per window).
pub struct Receiver {
    file: Option<Box<dyn WriteFile>>,
    decoder: Option<Decoder>,
    blksize: usize,
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
