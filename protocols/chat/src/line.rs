//! Line framing: bytes in whatever pieces TCP delivers, complete lines out, with a hard length limit.
//!
//! Memory: a member with no partial line holds no buffer at all. A partial line is kept in a buffer
//! that never exceeds the limit (plus one byte for a `\r`); a longer line is reported once as
//! [`Frame::TooLong`] and the rest of it is skipped up to its newline without being stored.

use std::borrow::Cow;

/// One framing event.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A complete line without its `\n` and without one trailing `\r`. Borrowed from the input when
    /// it arrived in one piece.
    Line(Cow<'a, [u8]>),
    /// A line exceeded the limit; it is (being) discarded up to its newline.
    TooLong,
}

/// Per-connection framing state.
#[derive(Default, Debug)]
pub struct LineReader {
    /// The start of an unfinished line; `None` (no allocation) between lines.
    partial: Option<Vec<u8>>,
    /// Skipping the rest of an over-long line, up to and including its `\n`.
    discarding: bool,
}

impl LineReader {
    /// Bytes held for an unfinished line.
    pub fn buffered(&self) -> usize {
        self.partial.as_ref().map_or(0, Vec::len)
    }

    /// Take the next frame from `data` (advancing it), or `None` once `data` is used up. Lines longer
    /// than `max` bytes (not counting `\r\n`) are reported as [`Frame::TooLong`].
    pub fn next<'a>(&mut self, data: &mut &'a [u8], max: usize) -> Option<Frame<'a>> {
        // Room for the line plus its `\r`, which is only stripped once the `\n` is seen.
        let limit = max.saturating_add(1);
        while !data.is_empty() {
            let newline = data.iter().position(|&b| b == b'\n');
            if self.discarding {
                match newline {
                    Some(i) => {
                        *data = &data[i + 1..];
                        self.discarding = false;
                        continue;
                    }
                    None => {
                        *data = &[];
                        return None;
                    }
                }
            }
            let Some(i) = newline else {
                let have = self.buffered();
                if have + data.len() > limit {
                    self.partial = None;
                    self.discarding = true;
                    *data = &[];
                    return Some(Frame::TooLong);
                }
                self.partial.get_or_insert_with(Vec::new).extend_from_slice(data);
                *data = &[];
                return None;
            };
            let chunk = &data[..i];
            *data = &data[i + 1..];
            let mut line = match self.partial.take() {
                None => Cow::Borrowed(chunk),
                Some(mut v) => {
                    if v.len() + chunk.len() > limit {
                        return Some(Frame::TooLong);
                    }
                    v.extend_from_slice(chunk);
                    Cow::Owned(v)
                }
            };
            if line.last() == Some(&b'\r') {
                match &mut line {
                    Cow::Borrowed(b) => *b = &b[..b.len() - 1],
                    Cow::Owned(v) => {
                        v.pop();
                    }
                }
            }
            if line.len() > max {
                return Some(Frame::TooLong);
            }
            return Some(Frame::Line(line));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(r: &mut LineReader, mut data: &[u8], max: usize) -> Vec<Option<Vec<u8>>> {
        let mut out = Vec::new();
        while let Some(f) = r.next(&mut data, max) {
            out.push(match f {
                Frame::Line(l) => Some(l.into_owned()),
                Frame::TooLong => None,
            });
        }
        out
    }

    #[test]
    fn splits_and_strips_cr() {
        let mut r = LineReader::default();
        assert_eq!(
            frames(&mut r, b"a\r\nbc\n\n", 10),
            vec![Some(b"a".to_vec()), Some(b"bc".to_vec()), Some(vec![])]
        );
        assert_eq!(r.buffered(), 0);
    }

    #[test]
    fn joins_pieces_and_frees_the_buffer() {
        let mut r = LineReader::default();
        assert!(frames(&mut r, b"hel", 10).is_empty());
        assert_eq!(r.buffered(), 3);
        assert!(frames(&mut r, b"lo\r", 10).is_empty());
        assert_eq!(frames(&mut r, b"\nx", 10), vec![Some(b"hello".to_vec())]);
        assert_eq!(r.buffered(), 1);
        assert!(r.partial.is_some());
        assert_eq!(frames(&mut r, b"\n", 10), vec![Some(b"x".to_vec())]);
        assert!(r.partial.is_none(), "no buffer between lines");
    }

    #[test]
    fn exact_limit_with_crlf_is_accepted() {
        let mut r = LineReader::default();
        assert_eq!(frames(&mut r, b"0123", 4), vec![]);
        assert_eq!(frames(&mut r, b"\r\n", 4), vec![Some(b"0123".to_vec())]);
        assert_eq!(frames(&mut r, b"01234\n", 4), vec![None]);
    }

    #[test]
    fn too_long_is_reported_once_and_skipped_to_newline() {
        let mut r = LineReader::default();
        assert_eq!(frames(&mut r, b"0123456", 4), vec![None]);
        assert_eq!(r.buffered(), 0);
        assert_eq!(frames(&mut r, &[b'x'; 10_000], 4), vec![]);
        assert_eq!(r.buffered(), 0, "memory never grows with the line");
        assert_eq!(frames(&mut r, b"yy\nok\n", 4), vec![Some(b"ok".to_vec())]);
    }

    #[test]
    fn too_long_across_pieces_with_newline() {
        let mut r = LineReader::default();
        assert_eq!(frames(&mut r, b"012", 4), vec![]);
        assert_eq!(frames(&mut r, b"3456\nab\n", 4), vec![None, Some(b"ab".to_vec())]);
    }
}
