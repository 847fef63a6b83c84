//! `tcp-echo`: N connections in a closed loop, each keeping `depth` messages in flight.
//!
//! Every connection writes a deterministic byte stream (a pseudo-random pattern at a
//! per-connection offset) and checks every echoed byte against it. A message's latency runs from
//! the moment it was queued for writing to the moment its last byte came back.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use anyhow::Result;
use mio::net::TcpStream;
use mio::{Events, Poll};

use super::latency::Latencies;
use super::{BenchArgs, BenchResult, connect, proc, progress};

/// Period of the byte pattern (a prime, so that connections' streams do not line up).
const PERIOD: usize = 65_521;
/// Largest read or write: the pattern buffer is `PERIOD + CHUNK` long so any chunk is one slice.
const CHUNK: usize = 64 * 1024;
/// After the window, how long to wait for messages still in flight.
const DRAIN: Duration = Duration::from_secs(5);

/// The pattern: a fixed pseudo-random sequence (xorshift), `PERIOD + CHUNK` bytes.
pub fn pattern() -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    (0..PERIOD + CHUNK)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

/// One client connection.
struct Conn {
    stream: TcpStream,
    /// Where this connection's stream starts in the pattern.
    start: usize,
    /// Bytes queued for writing (whole messages), written, and received (all checked).
    queued: u64,
    written: u64,
    received: u64,
    /// Send time of each message in flight, oldest first.
    inflight: VecDeque<Instant>,
    /// Closed by the server or failed a check.
    dead: bool,
}

impl Conn {
    /// Slice of the pattern at stream offset `off`, at most `len` bytes.
    fn slice<'p>(&self, pat: &'p [u8], off: u64, len: usize) -> &'p [u8] {
        let at = (self.start + (off % PERIOD as u64) as usize) % PERIOD;
        &pat[at..at + len.min(CHUNK)]
    }

    /// Write queued bytes until done or `WouldBlock`.
    fn flush(&mut self, pat: &[u8]) -> io::Result<()> {
        while self.written < self.queued {
            let chunk = self.slice(pat, self.written, (self.queued - self.written) as usize);
            match self.stream.write(chunk) {
                Ok(n) => self.written += n as u64,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// The run's shared state.
struct Run {
    pat: Vec<u8>,
    buf: Vec<u8>,
    size: u64,
    lat: Latencies,
    /// Messages completed inside the window.
    msgs: u64,
    errors: u64,
}

impl Run {
    /// Read until `WouldBlock`, check bytes, complete messages; refill the pipeline while `sending`.
    fn serve(&mut self, c: &mut Conn, now: Instant, sending: bool) {
        loop {
            let n = match c.stream.read(&mut self.buf) {
                Ok(0) => return self.fail(c, "closed by the server"),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return self.fail(c, &e.to_string()),
            };
            if c.received + n as u64 > c.written || self.buf[..n] != *c.slice(&self.pat, c.received, n) {
                return self.fail(c, "echoed bytes differ from those sent");
            }
            c.received += n as u64;
            while c.inflight.len() as u64 > (c.queued - c.received).div_ceil(self.size) {
                let sent = c.inflight.pop_front().unwrap_or(now);
                self.lat.record(now - sent);
                if sending {
                    self.msgs += 1;
                    c.inflight.push_back(now);
                    c.queued += self.size;
                }
            }
        }
        if let Err(e) = c.flush(&self.pat) {
            self.fail(c, &e.to_string());
        }
    }

    fn fail(&mut self, c: &mut Conn, why: &str) {
        if !c.dead {
            log::warn!("connection to {:?}: {why}", c.stream.peer_addr().ok());
            c.dead = true;
            self.errors += 1;
        }
    }
}

pub fn run(args: &BenchArgs) -> Result<BenchResult> {
    proc::raise_fd_limit();
    let mut poll = Poll::new()?;
    let pb = progress(args.duration, "tcp-echo");
    pb.set_message("connecting");
    let streams =
        connect::connect_all(&mut poll, args.target, args.conns, |n| pb.set_message(format!("{n} up")))?;
    let mut conns: Vec<Conn> = streams
        .into_iter()
        .enumerate()
        .map(|(i, stream)| Conn {
            stream,
            start: (i * 7919) % PERIOD,
            queued: 0,
            written: 0,
            received: 0,
            inflight: VecDeque::new(),
            dead: false,
        })
        .collect();
    let size = args.size as u64;
    let mut run =
        Run { pat: pattern(), buf: vec![0; CHUNK], size, lat: Latencies::default(), msgs: 0, errors: 0 };
    let mut events = Events::with_capacity(1024);
    let (server0, client0) = (args.server_pid.and_then(proc::sample), proc::thread_cpu_s());
    let t0 = Instant::now();
    let end = t0 + args.duration;
    for c in &mut conns {
        for _ in 0..args.depth {
            c.inflight.push_back(t0);
            c.queued += size;
        }
        if let Err(e) = c.flush(&run.pat) {
            run.fail(c, &e.to_string());
        }
    }
    let mut server1 = None;
    let mut client1 = 0.0;
    let mut redraw = super::Every::new(Duration::from_millis(100));
    loop {
        let now = Instant::now();
        let sending = now < end;
        if !sending && server1.is_none() {
            server1 = args.server_pid.and_then(proc::sample);
            client1 = proc::thread_cpu_s();
            pb.finish_and_clear();
        }
        // The scan over every connection only once sending is over: during the window it would
        // cost the load generator (the bottleneck) a pass over 10,000 structs per poll.
        if now > end + DRAIN || (!sending && !conns.iter().any(|c| !c.dead && c.received < c.queued)) {
            break;
        }
        if redraw.due(now) {
            pb.set_position((now - t0).as_millis() as u64);
            pb.set_message(format!("{} msgs", run.msgs));
        }
        let timeout = if sending { end - now } else { end + DRAIN - now }.min(Duration::from_millis(100));
        poll.poll(&mut events, Some(timeout))?;
        let now = Instant::now();
        let sending = now < end;
        for ev in events.iter() {
            if let Some(c) = conns.get_mut(ev.token().0).filter(|c| !c.dead) {
                run.serve(c, now, sending);
            }
        }
    }
    for c in conns.iter_mut().filter(|c| !c.dead && c.received < c.queued) {
        run.fail(c, "messages still in flight after the drain time");
    }
    let mut r = BenchResult::new(args, "tcp-echo");
    let secs = args.duration.as_secs_f64();
    r.duration_s = secs;
    r.connected = conns.len();
    r.msgs = run.msgs;
    r.msgs_per_s = run.msgs as f64 / secs;
    r.mb_per_s = (run.msgs * size) as f64 / secs / 1e6;
    (r.p50_us, r.p99_us, r.p999_us) = run.lat.summary();
    r.errors = run.errors;
    r.client_cpu_s = client1 - client0;
    r.server_cpu(server0, server1);
    Ok(r)
}
