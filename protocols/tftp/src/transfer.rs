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

use crate::files::{FsError, ReadFile};
use crate::netascii::Encoder;
use crate::packet::{ErrorCode, Mode, Packet, error_packet};

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
    /// The file being sent.
    file: Box<dyn ReadFile>,
    /// File offset of the next raw read.
    offset: u64,
    /// Netascii encoder (None for octet).
    encoder: Option<Encoder>,
    /// Raw bytes read ahead for the encoder, and how many of them are used.
    raw: Vec<u8>,
    /// How many bytes of `raw` the encoder has consumed.
    raw_used: usize,
}

impl BlockSource {
    /// File bytes turned into blocks so far (read-ahead not yet encoded is not counted).
    fn consumed(&self) -> u64 {
        self.offset - (self.raw.len() - self.raw_used) as u64
    }

    /// The DATA packet of the next block, read (and encoded) straight into it: at most `blksize`
    /// data bytes after the 4-byte header; fewer means it is the last block.
    fn next_packet(&mut self, block_no: u16, blksize: usize) -> Result<Vec<u8>, FsError> {
        let end = DATA_HEADER + blksize;
        let mut pkt = Vec::with_capacity(end);
        pkt.extend_from_slice(&[0, 3]);
        pkt.extend_from_slice(&block_no.to_be_bytes());
        match &mut self.encoder {
            None => {
                pkt.resize(end, 0);
                let mut n = DATA_HEADER;
                while n < end {
                    let got = self.file.read_at(self.offset, &mut pkt[n..])?;
                    if got == 0 {
                        break;
                    }
                    n += got;
                    self.offset += got as u64;
                }
                pkt.truncate(n);
            }
            Some(enc) => loop {
                let used = enc.encode(&self.raw[self.raw_used..], &mut pkt, end);
                self.raw_used += used;
                if pkt.len() >= end {
                    break;
                }
                self.raw.resize(blksize, 0);
                let got = self.file.read_at(self.offset, &mut self.raw)?;
                self.raw.truncate(got);
                self.raw_used = 0;
                self.offset += got as u64;
                if got == 0 {
                    enc.encode(&[], &mut pkt, end); // flush a pending byte, if any
                    break;
                }
            },
        }
        Ok(pkt)
    }
}

/// Opcode and block number in front of a DATA packet's bytes.
const DATA_HEADER: usize = 4;

/// Sends a file: DATA out, ACKs in, a window of `windowsize` blocks in flight.
pub struct Sender {
    /// Where blocks come from.
    source: BlockSource,
    /// Data bytes per block.
    blksize: usize,
    /// Blocks in flight at most.
    windowsize: usize,
    /// Sent, unacknowledged packets with their block numbers, oldest first. Block 0 is the OACK.
    window: VecDeque<(u16, Bytes)>,
    /// Number of the next block to read.
    next_block: u16,
    /// The last (short) block has been read.
    eof: bool,
    /// Our OACK is out and not yet acknowledged.
    oack_pending: bool,
    /// File bytes sent so far (before netascii conversion).
    pub bytes: u64,
    /// The deadline.
    pub retry: Retry,
    /// Where the transfer stands.
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
            let pkt = match self.source.next_packet(self.next_block, self.blksize) {
                Ok(p) => p,
                Err(e) => return self.fail(out, e.to_tftp().0, e.to_tftp().1, "read error"),
            };
            self.eof = pkt.len() - DATA_HEADER < self.blksize;
            self.bytes = self.source.consumed();
            let pkt = Bytes::from(pkt);
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
pub(crate) fn peer_error(code: ErrorCode, message: &str, after_oack: bool) -> Status {
    let msg: String = message.chars().take(80).filter(|c| !c.is_control()).collect();
    if code == ErrorCode::OptionRefused && after_oack {
        Status::Failed(format!("options declined by peer: {msg}"))
    } else {
        Status::Failed(format!("peer error {}: {msg}", code.code()))
    }
}

pub use crate::receiver::Receiver;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::{FileSystem, MemFs};

    fn sender(len: usize, blksize: usize, window: usize, now: Instant) -> Sender {
        let mut fs = MemFs::default();
        fs.insert("f", (0..len).map(|i| i as u8).collect());
        let file = fs.open_read("f").unwrap();
        Sender::new(file, Mode::Octet, blksize, window, Retry::new(now, Duration::from_secs(1), 3), None)
    }

    fn blocks(out: &[Bytes]) -> Vec<u16> {
        out.iter().map(|p| u16::from_be_bytes([p[2], p[3]])).collect()
    }

    #[test]
    fn window_fills_and_a_mid_window_ack_resends_the_rest() {
        let now = Instant::now();
        let mut s = sender(100, 10, 4, now);
        let mut out = Vec::new();
        s.start(now, &mut out);
        assert_eq!(blocks(&out), [1, 2, 3, 4]);
        out.clear();
        s.on_packet(now, &Packet::Ack { block: 2 }, &mut out);
        assert_eq!(blocks(&out), [3, 4, 5, 6], "3 and 4 were lost: resent, then new blocks");
        out.clear();
        s.on_packet(now, &Packet::Ack { block: 2 }, &mut out);
        s.on_packet(now, &Packet::Ack { block: 1 }, &mut out);
        assert!(out.is_empty(), "stale ACKs send nothing");
    }

    #[test]
    fn timeouts_double_then_give_up() {
        let t0 = Instant::now();
        let mut s = sender(5, 10, 1, t0);
        let mut out = Vec::new();
        s.start(t0, &mut out);
        let mut at = t0;
        let mut gaps = Vec::new();
        while s.status() == &Status::Running {
            let d = s.retry.deadline;
            gaps.push((d - at).as_secs());
            at = d;
            s.on_timeout(d, &mut out);
        }
        assert_eq!(gaps, [1, 2, 4, 8]);
        assert_eq!(s.status(), &Status::Failed("timed out".into()));
        assert_eq!(out.len(), 4, "first send plus 3 resends");
    }

    #[test]
    fn block_numbers_wrap() {
        let now = Instant::now();
        let mut s = sender(65537 * 8, 8, 1, now);
        let mut out = Vec::new();
        s.start(now, &mut out);
        let mut block: u16 = 1;
        for _ in 0..65537 {
            out.clear();
            s.on_packet(now, &Packet::Ack { block }, &mut out);
            block = block.wrapping_add(1);
        }
        assert_eq!(blocks(&out), [2], "block 65538 goes out as 2 (after 65535, 0, 1)");
        assert_eq!(out[0].len(), 4, "the empty final block");
        out.clear();
        s.on_packet(now, &Packet::Ack { block: 2 }, &mut out);
        assert_eq!(s.status(), &Status::Finished);
    }
}
