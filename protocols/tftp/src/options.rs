//! Option negotiation (RFC 2347) for blksize (RFC 2348), timeout and tsize (RFC 2349) and
//! windowsize (RFC 7440), with one policy per option.
//!
//! | option     | valid (RFC)   | server policy                                                         |
//! |------------|---------------|-----------------------------------------------------------------------|
//! | blksize    | 8..=65464     | above our maximum: clamped down; below 8 or not a number: ignored     |
//! | timeout    | 1..=16 s      | accepted as sent; above 16 s (MAX_RTO), 0 or not a number: ignored    |
//! | tsize      | a byte count  | RRQ: answered with the size, except netascii (not exact) and empty    |
//! |            |               | files (curl rejects `tsize 0`); WRQ: echoed, or ERROR 3 over the cap  |
//! | windowsize | 1..=65535     | clamped to [`MAX_WINDOWSIZE`] and to what fits a client's default     |
//! |            |               | socket buffer ([`window_limit`]); 0 or not a number: ignored          |
//!
//! An ignored option is left out of the OACK, as RFC 2347 allows; unknown options are ignored the same
//! way. If nothing is left, no OACK is sent at all and the transfer starts as in RFC 1350. Names are
//! matched case-insensitively; the first of duplicated options wins.

use std::time::Duration;

use crate::packet::{ErrorCode, Kind, Mode};

/// RFC 1350 block size, used when blksize is not negotiated.
pub const DEFAULT_BLKSIZE: usize = 512;
/// Smallest blksize RFC 2348 allows.
pub const MIN_BLKSIZE: usize = 8;
/// Largest blksize RFC 2348 allows (65535 minus IP and UDP headers).
pub const MAX_BLKSIZE: usize = 65464;
/// Largest window we agree to, in blocks: beyond this a single loss costs more than it saves.
pub const MAX_WINDOWSIZE: usize = 64;
/// Receive-buffer budget one window may use at the client. Most clients keep Linux's default socket
/// buffer (`rmem_default`, 208 KiB), which is charged for each datagram's kernel footprint, not its
/// payload: a window that does not fit loses its tail every time and crawls on timeouts. A little
/// below 208 KiB leaves room for a stray retransmission.
pub const WINDOW_BUFFER_BUDGET: usize = 192 * 1024;

/// Rough kernel footprint of one received datagram carrying `blksize` bytes: the payload plus
/// headers and `skb_shared_info`, rounded up to the allocator's power of two, plus the `sk_buff`.
/// Measured against atftp on loopback: 16 blocks of 8192 overflow 208 KiB, 11 do not.
fn datagram_footprint(blksize: usize) -> usize {
    (blksize + 448).next_power_of_two() + 256
}

/// What was agreed for one transfer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Negotiated {
    /// Data bytes per block.
    pub blksize: usize,
    /// Blocks sent before waiting for an ACK.
    pub windowsize: usize,
    /// Retransmit timeout asked for by the client, if any.
    pub timeout: Option<Duration>,
    /// Transfer size: the file size (RRQ) or the client's declaration (WRQ).
    pub tsize: Option<u64>,
    /// The OACK's options, in the client's order; empty means send no OACK.
    pub oack: Vec<(String, String)>,
}

impl Default for Negotiated {
    fn default() -> Self {
        Negotiated { blksize: DEFAULT_BLKSIZE, windowsize: 1, timeout: None, tsize: None, oack: Vec::new() }
    }
}

impl Negotiated {
    /// The OACK options as borrowed pairs, for [`crate::Packet::Oack`].
    pub fn oack_pairs(&self) -> Vec<(&str, &str)> {
        self.oack.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect()
    }

    /// `blksize=1468 windowsize=8` for logs; `-` when none.
    pub fn describe(&self) -> String {
        if self.oack.is_empty() {
            return "-".into();
        }
        self.oack.iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join(" ")
    }
}

/// The largest windowsize allowed at a given blksize: at most [`MAX_WINDOWSIZE`], and a window of
/// datagrams must fit in [`WINDOW_BUFFER_BUDGET`]. This also bounds what a transfer keeps for
/// resending to under 128 KiB.
pub fn window_limit(blksize: usize) -> usize {
    (WINDOW_BUFFER_BUDGET / datagram_footprint(blksize)).clamp(1, MAX_WINDOWSIZE)
}

/// Server side: answer a request's options. `file_size` is the size of the file for a read.
/// `max_upload` caps a declared write size. Errors are sent as ERROR packets instead of an OACK.
pub fn negotiate(
    kind: Kind,
    mode: Mode,
    options: &[(&str, &str)],
    file_size: Option<u64>,
    max_blksize: usize,
    max_upload: Option<u64>,
) -> Result<Negotiated, (ErrorCode, &'static str)> {
    let mut n = Negotiated::default();
    let mut seen: Vec<String> = Vec::new();
    let mut window = None;
    for (name, value) in options {
        let lname = name.to_ascii_lowercase();
        if seen.contains(&lname) {
            continue;
        }
        seen.push(lname.clone());
        let num = value.parse::<u64>().ok();
        let answer = match (lname.as_str(), num) {
            ("blksize", Some(v)) if v >= MIN_BLKSIZE as u64 => {
                n.blksize = (v.min(max_blksize as u64) as usize).clamp(MIN_BLKSIZE, MAX_BLKSIZE);
                Some(n.blksize.to_string())
            }
            // RFC 2349 allows up to 255 s, but a client's choice must not let one forged request
            // hold a transfer slot for (1 + retries) × 255 s: larger values are left out of the OACK.
            ("timeout", Some(v)) if (1..=crate::transfer::MAX_RTO.as_secs()).contains(&v) => {
                n.timeout = Some(Duration::from_secs(v));
                Some(v.to_string())
            }
            ("tsize", Some(v)) => match kind {
                Kind::Write if max_upload.is_some_and(|max| v > max) => {
                    return Err((ErrorCode::DiskFull, "File too large"));
                }
                Kind::Write => {
                    n.tsize = Some(v);
                    Some(v.to_string())
                }
                Kind::Read => match file_size {
                    Some(size) if mode == Mode::Octet && size > 0 => {
                        n.tsize = Some(size);
                        Some(size.to_string())
                    }
                    _ => None,
                },
            },
            ("windowsize", Some(v)) if (1..=65535).contains(&v) => {
                window = Some((n.oack.len(), v as usize));
                Some(String::new()) // filled in below, once blksize is known
            }
            _ => None,
        };
        if let Some(v) = answer {
            n.oack.push((lname, v));
        }
    }
    if let Some((i, asked)) = window {
        n.windowsize = asked.min(window_limit(n.blksize));
        n.oack[i].1 = n.windowsize.to_string();
    }
    Ok(n)
}

/// Client side: check a server's OACK against what was asked. Only options we asked for may appear,
/// blksize and windowsize no larger than asked, timeout exactly as asked.
pub fn accept_oack(asked: &[(&str, &str)], oack: &[(&str, &str)]) -> Result<Negotiated, &'static str> {
    let mut n = Negotiated::default();
    for (name, value) in oack {
        let lname = name.to_ascii_lowercase();
        let Some((_, asked_value)) = asked.iter().find(|(a, _)| a.eq_ignore_ascii_case(&lname)) else {
            return Err("server acknowledged an option we did not ask for");
        };
        let v: u64 = value.parse().map_err(|_| "server sent a non-numeric option value")?;
        let asked_v: u64 = asked_value.parse().unwrap_or(0);
        match lname.as_str() {
            "blksize" if (MIN_BLKSIZE as u64..=asked_v).contains(&v) => n.blksize = v as usize,
            "windowsize" if (1..=asked_v).contains(&v) => n.windowsize = v as usize,
            "timeout" if v == asked_v => n.timeout = Some(Duration::from_secs(v)),
            "tsize" => n.tsize = Some(v),
            _ => return Err("server sent an option value out of range"),
        }
        n.oack.push((lname, value.to_string()));
    }
    Ok(n)
}

/// The most bytes an upload may bring: the server's cap, and in octet mode the size the client
/// declared (`tsize` is exact there), so a client cannot declare 10 bytes and send a gigabyte. A
/// declared 0 means "unknown" (some clients send `tsize 0` on every request).
pub(crate) fn upload_cap(mode: Mode, tsize: Option<u64>, max: Option<u64>) -> Option<u64> {
    let declared = tsize.filter(|&t| mode == Mode::Octet && t > 0);
    match (declared, max) {
        (Some(t), Some(m)) => Some(t.min(m)),
        (t, m) => t.or(m),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(opts: &[(&str, &str)], size: u64) -> Negotiated {
        negotiate(Kind::Read, Mode::Octet, opts, Some(size), MAX_BLKSIZE, None).unwrap()
    }

    #[test]
    fn blksize_policy() {
        assert_eq!(read(&[("blksize", "1468")], 9).oack, [("blksize".into(), "1468".into())]);
        assert_eq!(read(&[("BLKSIZE", "70000")], 9).blksize, MAX_BLKSIZE);
        assert_eq!(read(&[("blksize", "7")], 9), Negotiated::default());
        assert_eq!(read(&[("blksize", "x")], 9), Negotiated::default());
        let n = negotiate(Kind::Read, Mode::Octet, &[("blksize", "9000")], None, 1024, None).unwrap();
        assert_eq!(n.blksize, 1024);
    }

    #[test]
    fn tsize_policy() {
        assert_eq!(read(&[("tsize", "0")], 1234).tsize, Some(1234));
        assert!(read(&[("tsize", "0")], 0).oack.is_empty(), "curl rejects tsize 0");
        let n = negotiate(Kind::Read, Mode::Netascii, &[("tsize", "0")], Some(10), MAX_BLKSIZE, None);
        assert!(n.unwrap().oack.is_empty(), "netascii size is not exact");
        let w = negotiate(Kind::Write, Mode::Octet, &[("tsize", "100")], None, MAX_BLKSIZE, Some(99));
        assert_eq!(w.unwrap_err().0, ErrorCode::DiskFull);
        let w = negotiate(Kind::Write, Mode::Octet, &[("tsize", "99")], None, MAX_BLKSIZE, Some(99));
        assert_eq!(w.unwrap().tsize, Some(99));
    }

    #[test]
    fn timeout_and_window_policy() {
        assert_eq!(read(&[("timeout", "0")], 1).oack, []);
        assert_eq!(read(&[("timeout", "256")], 1).oack, []);
        assert_eq!(read(&[("timeout", "255")], 1).oack, [], "above the server's ceiling: not acknowledged");
        assert_eq!(read(&[("timeout", "16")], 1).timeout, Some(Duration::from_secs(16)));
        assert_eq!(read(&[("timeout", "3")], 1).timeout, Some(Duration::from_secs(3)));
        assert_eq!(read(&[("windowsize", "0")], 1).oack, []);
        assert_eq!(read(&[("windowsize", "1000")], 1).windowsize, MAX_WINDOWSIZE);
        let n = read(&[("windowsize", "16"), ("blksize", "65464")], 1);
        assert_eq!(n.windowsize, 1);
        assert_eq!(n.oack[0], ("windowsize".into(), "1".into()));
        assert_eq!(read(&[("windowsize", "64"), ("blksize", "8192")], 1).windowsize, 11);
        assert_eq!(read(&[("windowsize", "64"), ("blksize", "1468")], 1).windowsize, 64);
        assert_eq!(read(&[("blksize", "512"), ("blksize", "1024")], 1).blksize, 512);
        assert_eq!(read(&[("multicast", ""), ("foo", "1")], 1).oack, []);
    }

    #[test]
    fn client_checks_oack() {
        let asked = [("blksize", "1468"), ("tsize", "0")];
        let n = accept_oack(&asked, &[("blksize", "1024"), ("tsize", "77")]).unwrap();
        assert_eq!((n.blksize, n.tsize), (1024, Some(77)));
        assert!(accept_oack(&asked, &[("blksize", "2000")]).is_err());
        assert!(accept_oack(&asked, &[("windowsize", "2")]).is_err());
    }
}
