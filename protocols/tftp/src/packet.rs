//! TFTP wire format (RFC 1350, RFC 2347): a checked parse of untrusted bytes into [`Packet`], and
//! [`Packet::emit`], which writes exactly [`Packet::len`] bytes.
//!
//! Parsing never panics and never allocates beyond the packet's own length: names, modes and options
//! borrow from the datagram.

use std::fmt;

/// Largest number of option pairs parsed from one request; more are ignored. RFC 2347 requests fit
/// in 512 bytes, so a real client never comes near; the bound keeps junk cheap.
pub const MAX_OPTIONS: usize = 16;

/// Longest file name accepted, in bytes. Longer names are malformed requests (ERROR 4).
pub const MAX_FILENAME: usize = 1024;

/// TFTP error codes (RFC 1350 §5, RFC 2347 for 8).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ErrorCode {
    /// 0: not defined, see the message.
    Undefined,
    /// 1: file not found.
    NotFound,
    /// 2: access violation.
    AccessViolation,
    /// 3: disk full or allocation exceeded.
    DiskFull,
    /// 4: illegal TFTP operation.
    IllegalOperation,
    /// 5: unknown transfer ID.
    UnknownTid,
    /// 6: file already exists.
    FileExists,
    /// 7: no such user.
    NoSuchUser,
    /// 8: option negotiation refused (RFC 2347).
    OptionRefused,
    /// Any other value on the wire.
    Other(u16),
}

impl ErrorCode {
    /// The wire value.
    pub fn code(self) -> u16 {
        match self {
            ErrorCode::Undefined => 0,
            ErrorCode::NotFound => 1,
            ErrorCode::AccessViolation => 2,
            ErrorCode::DiskFull => 3,
            ErrorCode::IllegalOperation => 4,
            ErrorCode::UnknownTid => 5,
            ErrorCode::FileExists => 6,
            ErrorCode::NoSuchUser => 7,
            ErrorCode::OptionRefused => 8,
            ErrorCode::Other(n) => n,
        }
    }

    /// From the wire value.
    pub fn from_code(n: u16) -> Self {
        match n {
            0 => ErrorCode::Undefined,
            1 => ErrorCode::NotFound,
            2 => ErrorCode::AccessViolation,
            3 => ErrorCode::DiskFull,
            4 => ErrorCode::IllegalOperation,
            5 => ErrorCode::UnknownTid,
            6 => ErrorCode::FileExists,
            7 => ErrorCode::NoSuchUser,
            8 => ErrorCode::OptionRefused,
            n => ErrorCode::Other(n),
        }
    }
}

/// Transfer mode of a request. Compared case-insensitively on the wire.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    /// Bytes as they are.
    Octet,
    /// NVT ASCII: LF ↔ CR LF and CR ↔ CR NUL on the wire.
    Netascii,
    /// RFC 1350 mail mode: obsolete, always refused.
    Mail,
}

impl Mode {
    /// The lowercase wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Octet => "octet",
            Mode::Netascii => "netascii",
            Mode::Mail => "mail",
        }
    }
}

/// Request kind.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    /// RRQ (opcode 1): the client reads.
    Read,
    /// WRQ (opcode 2): the client writes.
    Write,
}

/// A parsed packet, borrowing from the datagram.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Packet<'a> {
    /// RRQ or WRQ.
    Request {
        /// Read or write.
        kind: Kind,
        /// File name as sent (UTF-8, no NUL).
        filename: &'a str,
        /// Transfer mode.
        mode: Mode,
        /// Option name/value pairs in the order sent (at most [`MAX_OPTIONS`]).
        options: Vec<(&'a str, &'a str)>,
    },
    /// DATA (3).
    Data {
        /// Block number.
        block: u16,
        /// Payload (0..=blksize bytes).
        data: &'a [u8],
    },
    /// ACK (4).
    Ack {
        /// Block number.
        block: u16,
    },
    /// ERROR (5).
    Error {
        /// Error code.
        code: ErrorCode,
        /// Message (lossy: invalid UTF-8 or a missing NUL is tolerated).
        message: String,
    },
    /// OACK (6).
    Oack {
        /// Accepted options.
        options: Vec<(&'a str, &'a str)>,
    },
}

/// Why a datagram is not a valid packet.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ParseError {
    /// Shorter than its fixed header.
    Truncated,
    /// Opcode not in 1..=6.
    UnknownOpcode(u16),
    /// A string field without its terminating NUL.
    MissingNul,
    /// Empty or over-long file name, or one that is not UTF-8.
    BadFilename,
    /// A mode other than netascii, octet or mail.
    BadMode,
    /// An option name without a value, or an option that is not UTF-8.
    BadOption,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Truncated => f.write_str("truncated packet"),
            ParseError::UnknownOpcode(n) => write!(f, "unknown opcode {n}"),
            ParseError::MissingNul => f.write_str("missing NUL terminator"),
            ParseError::BadFilename => f.write_str("bad file name"),
            ParseError::BadMode => f.write_str("unknown transfer mode"),
            ParseError::BadOption => f.write_str("malformed option"),
        }
    }
}

/// Split off one NUL-terminated string.
fn cstr(buf: &[u8]) -> Result<(&[u8], &[u8]), ParseError> {
    let nul = buf.iter().position(|&b| b == 0).ok_or(ParseError::MissingNul)?;
    Ok((&buf[..nul], &buf[nul + 1..]))
}

/// Parse `name\0value\0...` pairs, keeping at most [`MAX_OPTIONS`].
fn parse_options(mut rest: &[u8]) -> Result<Vec<(&str, &str)>, ParseError> {
    let mut options = Vec::new();
    while !rest.is_empty() {
        let (name, r) = cstr(rest).map_err(|_| ParseError::BadOption)?;
        let (value, r) = cstr(r).map_err(|_| ParseError::BadOption)?;
        rest = r;
        let name = std::str::from_utf8(name).map_err(|_| ParseError::BadOption)?;
        let value = std::str::from_utf8(value).map_err(|_| ParseError::BadOption)?;
        if name.is_empty() {
            return Err(ParseError::BadOption);
        }
        if options.len() < MAX_OPTIONS {
            options.push((name, value));
        }
    }
    Ok(options)
}

impl<'a> Packet<'a> {
    /// Check and parse one datagram.
    pub fn parse(buf: &'a [u8]) -> Result<Packet<'a>, ParseError> {
        if buf.len() < 2 {
            return Err(ParseError::Truncated);
        }
        let opcode = u16::from_be_bytes([buf[0], buf[1]]);
        let body = &buf[2..];
        match opcode {
            1 | 2 => {
                let kind = if opcode == 1 { Kind::Read } else { Kind::Write };
                let (name, rest) = cstr(body)?;
                let (mode, rest) = cstr(rest)?;
                if name.is_empty() || name.len() > MAX_FILENAME {
                    return Err(ParseError::BadFilename);
                }
                let filename = std::str::from_utf8(name).map_err(|_| ParseError::BadFilename)?;
                let mode = match mode.to_ascii_lowercase().as_slice() {
                    b"octet" => Mode::Octet,
                    b"netascii" => Mode::Netascii,
                    b"mail" => Mode::Mail,
                    _ => return Err(ParseError::BadMode),
                };
                Ok(Packet::Request { kind, filename, mode, options: parse_options(rest)? })
            }
            3 | 4 if body.len() < 2 => Err(ParseError::Truncated),
            3 => Ok(Packet::Data { block: u16::from_be_bytes([body[0], body[1]]), data: &body[2..] }),
            4 => Ok(Packet::Ack { block: u16::from_be_bytes([body[0], body[1]]) }),
            5 if body.len() < 2 => Err(ParseError::Truncated),
            5 => {
                let code = ErrorCode::from_code(u16::from_be_bytes([body[0], body[1]]));
                // Be liberal: a message without its NUL is still an error report.
                let msg = &body[2..];
                let msg = &msg[..msg.iter().position(|&b| b == 0).unwrap_or(msg.len())];
                Ok(Packet::Error { code, message: String::from_utf8_lossy(msg).into_owned() })
            }
            6 => Ok(Packet::Oack { options: parse_options(body)? }),
            n => Err(ParseError::UnknownOpcode(n)),
        }
    }

    /// Length of the emitted packet.
    pub fn len(&self) -> usize {
        let opts = |o: &[(&str, &str)]| o.iter().map(|(n, v)| n.len() + v.len() + 2).sum::<usize>();
        match self {
            Packet::Request { filename, mode, options, .. } => {
                2 + filename.len() + 1 + mode.as_str().len() + 1 + opts(options)
            }
            Packet::Data { data, .. } => 4 + data.len(),
            Packet::Ack { .. } => 4,
            Packet::Error { message, .. } => 4 + message.len() + 1,
            Packet::Oack { options } => 2 + opts(options),
        }
    }

    /// Never true: every packet has at least an opcode.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Append the packet to `out` (exactly [`Packet::len`] bytes).
    pub fn emit(&self, out: &mut Vec<u8>) {
        let start = out.len();
        let put_opts = |out: &mut Vec<u8>, o: &[(&str, &str)]| {
            for (n, v) in o {
                out.extend_from_slice(n.as_bytes());
                out.push(0);
                out.extend_from_slice(v.as_bytes());
                out.push(0);
            }
        };
        match self {
            Packet::Request { kind, filename, mode, options } => {
                out.extend_from_slice(&(if *kind == Kind::Read { 1u16 } else { 2 }).to_be_bytes());
                out.extend_from_slice(filename.as_bytes());
                out.push(0);
                out.extend_from_slice(mode.as_str().as_bytes());
                out.push(0);
                put_opts(out, options);
            }
            Packet::Data { block, data } => {
                out.extend_from_slice(&[0, 3]);
                out.extend_from_slice(&block.to_be_bytes());
                out.extend_from_slice(data);
            }
            Packet::Ack { block } => {
                out.extend_from_slice(&[0, 4]);
                out.extend_from_slice(&block.to_be_bytes());
            }
            Packet::Error { code, message } => {
                out.extend_from_slice(&[0, 5]);
                out.extend_from_slice(&code.code().to_be_bytes());
                // A NUL inside the message would end it early on the wire: drop such bytes.
                out.extend(message.bytes().map(|b| if b == 0 { b'?' } else { b }));
                out.push(0);
            }
            Packet::Oack { options } => {
                out.extend_from_slice(&[0, 6]);
                put_opts(out, options);
            }
        }
        debug_assert_eq!(out.len() - start, self.len());
    }

    /// The emitted packet as a new buffer.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.len());
        self.emit(&mut v);
        v
    }
}

/// An ERROR packet, ready to send.
pub fn error_packet(code: ErrorCode, message: &str) -> Vec<u8> {
    Packet::Error { code, message: message.to_string() }.to_vec()
}

/// An ACK packet.
pub fn ack_packet(block: u16) -> Vec<u8> {
    Packet::Ack { block }.to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(bytes: &[u8], expect: Packet<'_>) {
        let p = Packet::parse(bytes).unwrap();
        assert_eq!(p, expect);
        assert_eq!(p.to_vec(), bytes);
    }

    #[test]
    fn rrq_with_options() {
        round_trip(
            b"\x00\x01boot/pxelinux.0\x00octet\x00blksize\x001468\x00tsize\x000\x00",
            Packet::Request {
                kind: Kind::Read,
                filename: "boot/pxelinux.0",
                mode: Mode::Octet,
                options: vec![("blksize", "1468"), ("tsize", "0")],
            },
        );
    }

    #[test]
    fn wrq_plain_and_mode_case() {
        round_trip(
            b"\x00\x02up.txt\x00netascii\x00",
            Packet::Request { kind: Kind::Write, filename: "up.txt", mode: Mode::Netascii, options: vec![] },
        );
        let p = Packet::parse(b"\x00\x01a\x00NetASCII\x00").unwrap();
        assert!(matches!(p, Packet::Request { mode: Mode::Netascii, .. }));
        let p = Packet::parse(b"\x00\x01a\x00MAIL\x00").unwrap();
        assert!(matches!(p, Packet::Request { mode: Mode::Mail, .. }));
    }

    #[test]
    fn data_ack_error_oack() {
        round_trip(b"\x00\x03\x00\x01hello", Packet::Data { block: 1, data: b"hello" });
        round_trip(b"\x00\x03\xff\xff", Packet::Data { block: 65535, data: b"" });
        round_trip(b"\x00\x04\x12\x34", Packet::Ack { block: 0x1234 });
        round_trip(
            b"\x00\x05\x00\x01File not found\x00",
            Packet::Error { code: ErrorCode::NotFound, message: "File not found".into() },
        );
        round_trip(b"\x00\x06blksize\x00512\x00", Packet::Oack { options: vec![("blksize", "512")] });
        round_trip(b"\x00\x06", Packet::Oack { options: vec![] });
    }

    #[test]
    fn error_without_nul_is_tolerated() {
        let p = Packet::parse(b"\x00\x05\x00\x08no").unwrap();
        assert_eq!(p, Packet::Error { code: ErrorCode::OptionRefused, message: "no".into() });
    }

    #[test]
    fn malformed() {
        use ParseError::*;
        let cases: &[(&[u8], ParseError)] = &[
            (b"", Truncated),
            (b"\x00", Truncated),
            (b"\x00\x03\x00", Truncated),
            (b"\x00\x04", Truncated),
            (b"\x00\x05\x00", Truncated),
            (b"\x00\x09abc", UnknownOpcode(9)),
            (b"\x00\x00", UnknownOpcode(0)),
            (b"\x00\x01file", MissingNul),
            (b"\x00\x01file\x00octet", MissingNul),
            (b"\x00\x01\x00octet\x00", BadFilename),
            (b"\x00\x01\xff\xfe\x00octet\x00", BadFilename),
            (b"\x00\x01f\x00binary\x00", BadMode),
            (b"\x00\x01f\x00octet\x00blksize\x00", BadOption),
            (b"\x00\x01f\x00octet\x00blksize", BadOption),
            (b"\x00\x01f\x00octet\x00\x00512\x00", BadOption),
        ];
        for (bytes, err) in cases {
            assert_eq!(Packet::parse(bytes), Err(*err), "{bytes:?}");
        }
        let long = [b"\x00\x01".as_slice(), &[b'a'; MAX_FILENAME + 1], b"\x00octet\x00"].concat();
        assert_eq!(Packet::parse(&long), Err(BadFilename));
    }

    #[test]
    fn options_are_bounded() {
        let mut req = b"\x00\x01f\x00octet\x00".to_vec();
        for i in 0..100 {
            req.extend_from_slice(format!("x{i}\x00v\x00").as_bytes());
        }
        let Packet::Request { options, .. } = Packet::parse(&req).unwrap() else { panic!() };
        assert_eq!(options.len(), MAX_OPTIONS);
    }

    #[test]
    fn junk_never_panics() {
        let mut x: u32 = 12345;
        for len in 0..600 {
            let buf: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    (x % 7) as u8 // small values: many NULs and valid opcodes
                })
                .collect();
            let _ = Packet::parse(&buf);
        }
    }
}
