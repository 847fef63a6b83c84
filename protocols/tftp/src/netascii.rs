//! Netascii (RFC 764 NVT ASCII, as TFTP uses it), streaming in both directions.
//!
//! File → wire: LF becomes CR LF, CR becomes CR NUL. Wire → file: CR LF becomes LF, CR NUL becomes
//! CR; a CR followed by anything else is kept as it is (liberal in what we accept). Both directions
//! keep one byte of state, so a pair split across two blocks converts exactly as if it were whole.

/// File-to-wire encoder. Output is produced into a bounded block: a pair that does not fit leaves
/// its second byte pending for the next block.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct Encoder {
    /// Second byte of a pair whose first byte ended the previous block.
    pending: Option<u8>,
}

impl Encoder {
    /// A fresh encoder.
    pub fn new() -> Self {
        Encoder::default()
    }

    /// True if a byte is still owed to the wire.
    pub fn has_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// Encode from `input` into `out` until `out` holds `max` bytes or `input` is used up.
    /// Returns how many input bytes were consumed.
    pub fn encode(&mut self, input: &[u8], out: &mut Vec<u8>, max: usize) -> usize {
        if out.len() < max {
            if let Some(b) = self.pending.take() {
                out.push(b);
            }
        }
        let mut used = 0;
        while out.len() < max && used < input.len() {
            let b = input[used];
            used += 1;
            let second = match b {
                b'\n' => Some(b'\n'),
                b'\r' => Some(0),
                _ => None,
            };
            match second {
                None => out.push(b),
                Some(s) => {
                    out.push(b'\r');
                    if out.len() < max {
                        out.push(s);
                    } else {
                        self.pending = Some(s);
                    }
                }
            }
        }
        used
    }
}

/// Wire-to-file decoder.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct Decoder {
    /// The previous block ended with a CR whose meaning depends on the next byte.
    pending_cr: bool,
}

impl Decoder {
    /// A fresh decoder.
    pub fn new() -> Self {
        Decoder::default()
    }

    /// Decode `input`, appending to `out`.
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) {
        for &b in input {
            if self.pending_cr {
                self.pending_cr = false;
                match b {
                    b'\n' => out.push(b'\n'),
                    0 => out.push(b'\r'),
                    b'\r' => {
                        out.push(b'\r');
                        self.pending_cr = true;
                    }
                    other => out.extend_from_slice(&[b'\r', other]),
                }
            } else if b == b'\r' {
                self.pending_cr = true;
            } else {
                out.push(b);
            }
        }
    }

    /// End of input: a trailing lone CR is kept.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if std::mem::take(&mut self.pending_cr) {
            out.push(b'\r');
        }
    }
}

/// Encode a whole buffer (for tests and small files).
pub fn encode_all(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = Encoder::new();
    let used = enc.encode(input, &mut out, usize::MAX);
    debug_assert_eq!(used, input.len());
    out
}

/// Decode a whole buffer.
pub fn decode_all(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut dec = Decoder::new();
    dec.decode(input, &mut out);
    dec.finish(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn fixtures() {
        assert_eq!(encode_all(b"a\nb\rc\r\n"), b"a\r\nb\r\0c\r\0\r\n");
        assert_eq!(decode_all(b"a\r\nb\r\0c\r\0\r\n"), b"a\nb\rc\r\n");
        assert_eq!(decode_all(b"x\ry\r"), b"x\ry\r");
    }

    /// Encode in blocks of `blk` bytes, as the sender does.
    fn encode_blocks(input: &[u8], blk: usize) -> Vec<Vec<u8>> {
        let mut enc = Encoder::new();
        let mut blocks = Vec::new();
        let mut pos = 0;
        loop {
            let mut block = Vec::new();
            pos += enc.encode(&input[pos..], &mut block, blk);
            let short = block.len() < blk;
            blocks.push(block);
            if short {
                return blocks;
            }
        }
    }

    proptest! {
        #[test]
        fn round_trip_across_blocks(
            input in proptest::collection::vec(prop_oneof![Just(b'\r'), Just(b'\n'), Just(0u8), any::<u8>()], 0..400),
            blk in 1usize..20,
        ) {
            let blocks = encode_blocks(&input, blk);
            let joined: Vec<u8> = blocks.concat();
            prop_assert_eq!(&joined, &encode_all(&input));
            let mut dec = Decoder::new();
            let mut out = Vec::new();
            for b in &blocks {
                dec.decode(b, &mut out);
            }
            dec.finish(&mut out);
            prop_assert_eq!(out, input);
        }

        #[test]
        fn decode_never_grows(input in proptest::collection::vec(any::<u8>(), 0..400)) {
            prop_assert!(decode_all(&input).len() <= input.len());
        }
    }
}
