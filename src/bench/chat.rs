//! `chat`: N members join one room; K of them send lines at a set rate; every other member must
//! receive every line, in order.
//!
//! A line is `m SENDER SEQ MICROS`, MICROS being when the sender wrote it (from the run's start), so
//! a receiver computes the end-to-end latency (sender's write → receiver's read) from the line
//! alone. Each receiver checks that each sender's sequence numbers arrive with no gap, duplicate or
//! reordering; at the end, every receiver must have every line of every other sender.
//! The server must allow the rate: run it with e.g. `--chat-flood-rate 1000 --chat-flood-burst 1000`.

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use mio::net::TcpStream;
use mio::{Events, Poll};

use super::latency::Latencies;
use super::{BenchArgs, BenchResult, connect, proc, progress};

/// Joining (nickname accepted, room entered) must finish within this time.
const JOIN_TIMEOUT: Duration = Duration::from_secs(60);
/// After joining, read and discard join notices until the room is quiet this long...
const QUIET: Duration = Duration::from_millis(300);
/// ...or at most this long.
const SETTLE_MAX: Duration = Duration::from_secs(10);
/// After the window, wait this long for lines still on their way.
const DRAIN: Duration = Duration::from_secs(10);
/// A member's unfinished input line is cut here (the server's lines are short).
const MAX_LINE: usize = 4096;

struct Member {
    stream: TcpStream,
    /// Bytes of an unfinished line.
    partial: Vec<u8>,
    /// Bytes not yet written.
    out: Vec<u8>,
    joined: bool,
    /// Next sequence number expected from each sender.
    expect: Vec<u64>,
    dead: bool,
}

struct Run {
    t0: Instant,
    lat: Latencies,
    deliveries: u64,
    errors: u64,
    buf: Vec<u8>,
}

impl Run {
    /// Read until `WouldBlock` and handle each complete line.
    fn read(&mut self, m: &mut Member, now: Instant, window_end: Option<Instant>) {
        loop {
            let n = match m.stream.read(&mut self.buf) {
                Ok(0) => return self.fail(m, "closed by the server"),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return self.fail(m, &e.to_string()),
            };
            m.partial.extend_from_slice(&self.buf[..n]);
            let mut start = 0;
            while let Some(nl) = m.partial[start..].iter().position(|&b| b == b'\n') {
                let line = &m.partial[start..start + nl];
                start += nl + 1;
                if let Err(why) = self.line(&mut m.joined, &mut m.expect, line, now, window_end) {
                    self.errors += 1;
                    log::warn!("chat: {why}");
                }
            }
            m.partial.drain(..start);
            if m.partial.len() > MAX_LINE {
                return self.fail(m, "line too long");
            }
        }
        if let Err(e) = flush(m) {
            self.fail(m, &e.to_string());
        }
    }

    fn line(
        &mut self,
        joined: &mut bool,
        expect: &mut [u64],
        line: &[u8],
        now: Instant,
        end: Option<Instant>,
    ) -> Result<(), String> {
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end();
        if text.starts_with("* you joined #") {
            *joined = true;
        }
        if text.starts_with("! ") {
            return Err(format!("server refused a line: {text}"));
        }
        let Some((_, body)) = text.split_once(": m ") else { return Ok(()) };
        let nums: Vec<u64> = body.split_whitespace().filter_map(|w| w.parse().ok()).collect();
        let [sender, seq, micros] = nums[..] else { return Err(format!("bad message line: {text}")) };
        let Some(want) = expect.get_mut(sender as usize) else {
            return Err(format!("unknown sender: {text}"));
        };
        if seq != *want {
            return Err(format!("from sender {sender}: expected line {}, got {seq}", *want));
        }
        *want += 1;
        let sent = self.t0 + Duration::from_micros(micros);
        self.lat.record(now.saturating_duration_since(sent));
        if end.is_none_or(|e| now < e) {
            self.deliveries += 1;
        }
        Ok(())
    }

    fn fail(&mut self, m: &mut Member, why: &str) {
        if !m.dead {
            log::warn!("chat member: {why}");
            m.dead = true;
            self.errors += 1;
        }
    }
}

/// Write pending bytes until done or `WouldBlock`.
fn flush(m: &mut Member) -> io::Result<()> {
    while !m.out.is_empty() {
        match m.stream.write(&m.out) {
            Ok(n) => drop(m.out.drain(..n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

pub fn run(args: &BenchArgs) -> Result<BenchResult> {
    let senders = args.senders.min(args.conns);
    if args.conns < 2 {
        bail!("chat: needs --conns >= 2");
    }
    proc::raise_fd_limit();
    let mut poll = Poll::new()?;
    let pb = progress(args.duration, "chat");
    pb.set_message("connecting");
    let streams =
        connect::connect_all(&mut poll, args.target, args.conns, |n| pb.set_message(format!("{n} up")))?;
    let mut members: Vec<Member> = streams
        .into_iter()
        .enumerate()
        .map(|(i, stream)| Member {
            stream,
            partial: Vec::new(),
            out: format!("b{i}\n").into_bytes(),
            joined: false,
            expect: vec![0; senders],
            dead: false,
        })
        .collect();
    let mut run = Run {
        t0: Instant::now(),
        lat: Latencies::default(),
        deliveries: 0,
        errors: 0,
        buf: vec![0; 64 * 1024],
    };
    let mut events = Events::with_capacity(1024);
    // Join: every member sends its nickname and waits to be in the room.
    pb.set_message("joining");
    let deadline = Instant::now() + JOIN_TIMEOUT;
    for m in &mut members {
        run.read(m, Instant::now(), None);
    }
    while members.iter().any(|m| !m.joined && !m.dead) {
        if Instant::now() > deadline {
            bail!("chat: not every member joined within {JOIN_TIMEOUT:?}");
        }
        step(&mut poll, &mut events, &mut members, &mut run, Duration::from_millis(100), None)?;
    }
    // Settle: let the join notices drain.
    let settle_end = Instant::now() + SETTLE_MAX;
    while Instant::now() < settle_end
        && step(&mut poll, &mut events, &mut members, &mut run, QUIET, None)? > 0
    {}
    let (server0, client0) = (args.server_pid.and_then(proc::sample), proc::thread_cpu_s());
    let t0 = Instant::now();
    run.t0 = t0;
    let end = t0 + args.duration;
    let interval = Duration::from_secs_f64(1.0 / args.rate);
    // Sender s sends line k at t0 + (k + s/K) * interval: spread evenly over the window.
    let mut sent = vec![0u64; senders];
    let next = |s: usize, k: u64| t0 + interval.mul_f64(k as f64 + s as f64 / senders as f64);
    let mut redraw = super::Every::new(Duration::from_millis(100));
    while Instant::now() < end {
        let now = Instant::now();
        for s in 0..senders {
            while next(s, sent[s]) <= now && next(s, sent[s]) < end {
                let micros = (next(s, sent[s]) - t0).as_micros();
                let m = &mut members[s];
                m.out.extend_from_slice(format!("m {s} {} {micros}\n", sent[s]).as_bytes());
                sent[s] += 1;
                if let Err(e) = flush(m) {
                    run.fail(m, &e.to_string());
                }
            }
        }
        let wake = (0..senders).map(|s| next(s, sent[s])).min().unwrap_or(end).min(end);
        if redraw.due(now) {
            pb.set_position((now - t0).as_millis() as u64);
            pb.set_message(format!("{} deliveries", run.deliveries));
        }
        step(
            &mut poll,
            &mut events,
            &mut members,
            &mut run,
            wake.saturating_duration_since(Instant::now()),
            Some(end),
        )?;
    }
    let (server1, client1) = (args.server_pid.and_then(proc::sample), proc::thread_cpu_s());
    pb.finish_and_clear();
    // Every receiver must get every line of every other sender.
    let complete = |members: &[Member]| {
        members
            .iter()
            .enumerate()
            .all(|(r, m)| m.dead || (0..senders).all(|s| s == r || m.expect[s] == sent[s]))
    };
    let drain_end = Instant::now() + DRAIN;
    while !complete(&members) && Instant::now() < drain_end {
        step(&mut poll, &mut events, &mut members, &mut run, Duration::from_millis(100), Some(end))?;
    }
    let mut missing = 0u64;
    for (r, m) in members.iter().enumerate() {
        missing += (0..senders).filter(|&s| s != r).map(|s| sent[s] - m.expect[s].min(sent[s])).sum::<u64>();
    }
    let mut r = BenchResult::new(args, "chat");
    r.duration_s = args.duration.as_secs_f64();
    r.connected = members.iter().filter(|m| !m.dead).count();
    r.depth = senders;
    r.msgs = run.deliveries;
    r.msgs_per_s = run.deliveries as f64 / r.duration_s;
    (r.p50_us, r.p99_us, r.p999_us) = run.lat.summary();
    r.lost = missing;
    r.errors = run.errors + missing;
    r.client_cpu_s = client1 - client0;
    r.server_cpu(server0, server1);
    Ok(r)
}

/// One poll and the reads it calls for; returns the number of events.
fn step(
    poll: &mut Poll,
    events: &mut Events,
    members: &mut [Member],
    run: &mut Run,
    timeout: Duration,
    end: Option<Instant>,
) -> Result<usize> {
    poll.poll(events, Some(timeout))?;
    let now = Instant::now();
    let mut n = 0;
    for ev in events.iter() {
        n += 1;
        if let Some(m) = members.get_mut(ev.token().0).filter(|m| !m.dead) {
            run.read(m, now, end);
        }
    }
    Ok(n)
}
