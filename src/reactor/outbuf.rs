//! A connection's pending output: a queue of shared byte chunks, written with `writev`.
//!
//! An idle connection's queue allocates nothing (`VecDeque::new` is free). A chat broadcast queues the
//! same `Bytes` on many connections: one allocation, many reference counts. Writing takes up to
//! [`MAX_IOVECS`] chunks per system call, so a burst of small messages costs one `writev`, not one
//! `write` each.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};

use bytes::{Buf, Bytes};

/// Chunks passed to one `writev` (Linux allows 1024; 64 covers a burst of small lines).
const MAX_IOVECS: usize = 64;

/// Pending output of one connection.
#[derive(Default)]
pub struct OutBuf {
    /// Chunks in order; the front one may be partly written (it is advanced in place).
    chunks: VecDeque<Bytes>,
    /// Total bytes waiting.
    len: usize,
}

impl OutBuf {
    /// Bytes waiting to be written.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Nothing waiting.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Queue a chunk (empty chunks are ignored).
    pub fn push(&mut self, data: Bytes) {
        if !data.is_empty() {
            self.len += data.len();
            self.chunks.push_back(data);
        }
    }

    /// Forget everything queued, releasing the queue's memory.
    pub fn clear(&mut self) {
        self.chunks = VecDeque::new();
        self.len = 0;
    }

    /// Write as much as the writer takes. Returns the bytes written; stops at the first error
    /// (including `WouldBlock`), which is returned only if nothing at all was written.
    pub fn write_to<W: Write>(&mut self, w: &mut W) -> io::Result<usize> {
        let mut total = 0;
        while !self.chunks.is_empty() {
            let result = if self.chunks.len() == 1 {
                // The common case (one reply, one line): a plain write, no iovec array to fill.
                w.write(&self.chunks[0])
            } else {
                let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
                let n = self.chunks.len().min(MAX_IOVECS);
                for (slot, chunk) in slices.iter_mut().zip(self.chunks.iter()) {
                    *slot = IoSlice::new(chunk);
                }
                w.write_vectored(&slices[..n])
            };
            match result {
                Ok(0) => {
                    if total == 0 {
                        return Err(io::ErrorKind::WriteZero.into());
                    }
                    break;
                }
                Ok(n) => {
                    self.consume(n);
                    total += n;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    if total == 0 {
                        return Err(e);
                    }
                    break;
                }
            }
        }
        if self.chunks.is_empty() && self.chunks.capacity() > 16 {
            // A burst grew the queue: give the memory back so idle connections stay small.
            self.chunks = VecDeque::new();
        }
        Ok(total)
    }

    fn consume(&mut self, mut n: usize) {
        self.len -= n;
        while n > 0 {
            let front = self.chunks.front_mut().expect("consumed more than queued");
            if n >= front.len() {
                n -= front.len();
                self.chunks.pop_front();
            } else {
                front.advance(n);
                n = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that takes at most `cap` bytes per call, then reports `WouldBlock` once `budget` is used.
    struct Trickle {
        got: Vec<u8>,
        cap: usize,
        budget: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.budget == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = buf.len().min(self.cap).min(self.budget);
            self.got.extend_from_slice(&buf[..n]);
            self.budget -= n;
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn partial_writes_keep_order_and_count() {
        let mut out = OutBuf::default();
        let mut expect = Vec::new();
        for i in 0..200u32 {
            let chunk: Vec<u8> = (0..(i % 13 + 1)).map(|j| (i + j) as u8).collect();
            expect.extend_from_slice(&chunk);
            out.push(Bytes::from(chunk));
        }
        out.push(Bytes::new());
        assert_eq!(out.len(), expect.len());
        let mut w = Trickle { got: Vec::new(), cap: 7, budget: 100 };
        assert_eq!(out.write_to(&mut w).unwrap(), 100);
        assert_eq!(out.len(), expect.len() - 100);
        // Blocked: nothing written, WouldBlock reported.
        assert_eq!(out.write_to(&mut w).unwrap_err().kind(), io::ErrorKind::WouldBlock);
        w.budget = usize::MAX;
        out.write_to(&mut w).unwrap();
        assert!(out.is_empty());
        assert_eq!(w.got, expect);
    }

    #[test]
    fn shared_chunk_is_not_copied() {
        let msg = Bytes::from_static(b"hello\r\n");
        let mut a = OutBuf::default();
        let mut b = OutBuf::default();
        a.push(msg.clone());
        b.push(msg.clone());
        let mut w = Trickle { got: Vec::new(), cap: 3, budget: 3 };
        a.write_to(&mut w).unwrap();
        assert_eq!(a.len(), 4);
        assert_eq!(b.len(), 7, "advancing one queue's chunk leaves the other's intact");
    }

    #[test]
    fn memory_is_released_after_a_burst() {
        let mut out = OutBuf::default();
        for _ in 0..1000 {
            out.push(Bytes::from_static(b"x"));
        }
        let mut w = Trickle { got: Vec::new(), cap: usize::MAX, budget: usize::MAX };
        out.write_to(&mut w).unwrap();
        assert_eq!(out.chunks.capacity(), 0);
        assert_eq!(w.got.len(), 1000);
    }
}
