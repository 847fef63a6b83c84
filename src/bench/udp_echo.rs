//! `udp-echo`: N UDP sockets in a closed loop, each keeping `depth` datagrams in flight.
//!
//! A datagram carries its sequence number (8 bytes) and then pattern bytes chosen by that number,
//! so every echoed byte is checked. A datagram not back within [`LOSS_TIMEOUT`] counts as lost and
//! is replaced, so loss never stalls the loop.

use std::collections::VecDeque;
use std::io;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};

use super::latency::Latencies;
use super::tcp_echo::pattern;
use super::{BenchArgs, BenchResult, connect, proc, progress};

/// A datagram not echoed within this time is lost (loopback round trips take microseconds).
const LOSS_TIMEOUT: Duration = Duration::from_millis(500);
/// Largest UDP payload over IPv4.
const MAX_DGRAM: usize = 65_507;
/// Bytes of the sequence-number header.
const HEADER: usize = 8;

struct Sock {
    udp: UdpSocket,
    next_seq: u64,
    /// (sequence, send time) of each datagram in flight, oldest first.
    inflight: VecDeque<(u64, Instant)>,
}

struct Run {
    pat: Vec<u8>,
    size: usize,
    out: Vec<u8>,
    lat: Latencies,
    msgs: u64,
    lost: u64,
    errors: u64,
}

/// The body bytes of datagram `seq`: a slice of the pattern chosen by the sequence number.
fn body(pat: &[u8], size: usize, seq: u64) -> &[u8] {
    let at = (seq.wrapping_mul(2_654_435_761) % 65_521) as usize;
    &pat[at..at + size - HEADER]
}

impl Run {
    fn send(&mut self, s: &mut Sock, now: Instant) {
        let seq = s.next_seq;
        s.next_seq += 1;
        self.out.clear();
        self.out.extend_from_slice(&seq.to_le_bytes());
        self.out.extend_from_slice(body(&self.pat, self.size, seq));
        s.inflight.push_back((seq, now));
        // A failed send (buffer full) is a loss the timeout will count.
        if let Err(e) = s.udp.send(&self.out) {
            log::debug!("udp send: {e}");
        }
    }

    /// Receive until `WouldBlock`; replace every answered datagram while `sending`.
    fn serve(&mut self, s: &mut Sock, buf: &mut [u8], now: Instant, sending: bool) {
        loop {
            let n = match s.udp.recv(buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    log::debug!("udp recv: {e}");
                    break;
                }
            };
            let Some(seq) = buf.get(..HEADER).map(|h| u64::from_le_bytes(h.try_into().unwrap_or_default()))
            else {
                self.errors += 1;
                continue;
            };
            if n != self.size || buf[HEADER..n] != *body(&self.pat, self.size, seq) {
                self.errors += 1;
                continue;
            }
            // Late answers to datagrams already counted lost are ignored.
            let Some(pos) = s.inflight.iter().position(|&(q, _)| q == seq) else { continue };
            let (_, sent) = s.inflight.remove(pos).unwrap_or((seq, now));
            self.lat.record(now - sent);
            if sending {
                self.msgs += 1;
                self.send(s, now);
            }
        }
    }

    /// Count datagrams older than the loss timeout as lost, replacing them while `sending`.
    fn expire(&mut self, s: &mut Sock, now: Instant, sending: bool) {
        while s.inflight.front().is_some_and(|&(_, t)| now - t > LOSS_TIMEOUT) {
            s.inflight.pop_front();
            self.lost += 1;
            if sending {
                self.send(s, now);
            }
        }
    }
}

pub fn run(args: &BenchArgs) -> Result<BenchResult> {
    if args.size < HEADER || args.size > MAX_DGRAM {
        bail!("udp-echo: --size must be {HEADER}..={MAX_DGRAM}");
    }
    proc::raise_fd_limit();
    let mut poll = Poll::new()?;
    let mut socks = Vec::with_capacity(args.conns);
    for i in 0..args.conns {
        let local = connect::source_for(args.target, i).unwrap_or_else(|| {
            if args.target.is_ipv6() { "[::1]:0" } else { "127.0.0.1:0" }.parse().unwrap()
        });
        let mut udp = UdpSocket::bind(local)?;
        udp.connect(args.target)?;
        poll.registry().register(&mut udp, Token(i), Interest::READABLE)?;
        socks.push(Sock { udp, next_seq: 0, inflight: VecDeque::new() });
    }
    let mut run = Run {
        pat: pattern(),
        size: args.size,
        out: Vec::with_capacity(args.size),
        lat: Latencies::default(),
        msgs: 0,
        lost: 0,
        errors: 0,
    };
    let mut buf = vec![0u8; MAX_DGRAM + 1];
    let mut events = Events::with_capacity(1024);
    let pb = progress(args.duration, "udp-echo");
    let (server0, client0) = (args.server_pid.and_then(proc::sample), proc::thread_cpu_s());
    let t0 = Instant::now();
    let end = t0 + args.duration;
    for s in &mut socks {
        for _ in 0..args.depth {
            run.send(s, t0);
        }
    }
    let (mut server1, mut client1) = (None, 0.0);
    let mut last_expire = t0;
    let mut redraw = super::Every::new(Duration::from_millis(100));
    loop {
        let now = Instant::now();
        let sending = now < end;
        if !sending && server1.is_none() {
            server1 = args.server_pid.and_then(proc::sample);
            client1 = proc::thread_cpu_s();
            pb.finish_and_clear();
        }
        if !sending && socks.iter().all(|s| s.inflight.is_empty()) {
            break;
        }
        if redraw.due(now) {
            pb.set_position((now - t0).as_millis() as u64);
            pb.set_message(format!("{} msgs, {} lost", run.msgs, run.lost));
        }
        poll.poll(&mut events, Some(Duration::from_millis(50)))?;
        let now = Instant::now();
        let sending = now < end;
        for ev in events.iter() {
            if let Some(s) = socks.get_mut(ev.token().0) {
                run.serve(s, &mut buf, now, sending);
            }
        }
        // Expiry scans every socket: do it at most every 50 ms.
        if now - last_expire > Duration::from_millis(50) {
            last_expire = now;
            for s in &mut socks {
                run.expire(s, now, sending);
            }
        }
    }
    let mut r = BenchResult::new(args, "udp-echo");
    let secs = args.duration.as_secs_f64();
    r.duration_s = secs;
    r.connected = socks.len();
    r.msgs = run.msgs;
    r.msgs_per_s = run.msgs as f64 / secs;
    r.mb_per_s = (run.msgs * args.size as u64) as f64 / secs / 1e6;
    (r.p50_us, r.p99_us, r.p999_us) = run.lat.summary();
    r.errors = run.errors;
    r.lost = run.lost;
    r.client_cpu_s = client1 - client0;
    r.server_cpu(server0, server1);
    Ok(r)
}
