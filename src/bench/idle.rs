//! `idle`: hold N idle connections and read what they cost the server.
//!
//! The server's RSS is read before connecting and again while every connection is up and quiet;
//! the difference divided by N is its memory per idle connection. At the end one byte goes through
//! every connection and must come back, proving each was really served (and not just queued in the
//! listen backlog).

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use anyhow::Result;
use mio::{Events, Poll};

use super::{BenchArgs, BenchResult, connect, proc, progress};

/// After the last connect, wait this long for the server to finish accepting and settle.
const SETTLE: Duration = Duration::from_secs(1);
/// The final liveness check gives up after this long.
const CHECK_TIMEOUT: Duration = Duration::from_secs(20);

pub fn run(args: &BenchArgs) -> Result<BenchResult> {
    proc::raise_fd_limit();
    let before = args.server_pid.and_then(proc::sample);
    let kernel0 = proc::kernel_kib();
    let mut poll = Poll::new()?;
    let pb = progress(args.duration, "idle");
    pb.set_message("connecting");
    let mut conns =
        connect::connect_all(&mut poll, args.target, args.conns, |n| pb.set_message(format!("{n} up")))?;
    std::thread::sleep(SETTLE);
    let t0 = Instant::now();
    pb.set_message(format!("holding {}", conns.len()));
    while t0.elapsed() < args.duration {
        pb.set_position(t0.elapsed().as_millis() as u64);
        std::thread::sleep(Duration::from_millis(100).min(args.duration));
    }
    let during = args.server_pid.and_then(proc::sample);
    let kernel1 = proc::kernel_kib();
    pb.finish_and_clear();
    let alive = check_all(&mut poll, &mut conns)?;
    let mut r = BenchResult::new(args, "idle");
    let n = conns.len() as f64;
    r.duration_s = args.duration.as_secs_f64();
    r.connected = alive;
    r.msgs = alive as u64;
    r.errors = (conns.len() - alive) as u64;
    r.kernel_per_conn = Some((kernel1 as f64 - kernel0 as f64) * 1024.0 / n);
    if let (Some(b), Some(d)) = (before, during) {
        r.server_rss_before_kib = Some(b.rss_kib);
        r.server_rss_kib = Some(d.rss_kib);
        r.rss_per_conn = Some((d.rss_kib as f64 - b.rss_kib as f64) * 1024.0 / n);
        r.server_threads = Some(d.threads);
        r.server_fds = Some(d.fds);
    }
    Ok(r)
}

/// Send one byte on every connection and count those that echo it back.
fn check_all(poll: &mut Poll, conns: &mut [mio::net::TcpStream]) -> Result<usize> {
    let mut state = vec![0u8; conns.len()]; // 0 = not sent, 1 = sent, 2 = echoed, 3 = failed
    for (c, st) in conns.iter_mut().zip(&mut state) {
        *st = match c.write(b"x") {
            Ok(1) => 1,
            _ => 3,
        };
    }
    let mut events = Events::with_capacity(1024);
    let deadline = Instant::now() + CHECK_TIMEOUT;
    let mut left = state.iter().filter(|&&s| s == 1).count();
    let mut buf = [0u8; 16];
    // Readiness already seen during the idle phase is not reported again: try every socket once.
    let mut first = true;
    while left > 0 && Instant::now() < deadline {
        let ready: Vec<usize> = if first {
            first = false;
            (0..conns.len()).collect()
        } else {
            poll.poll(&mut events, Some(Duration::from_millis(100)))?;
            events.iter().map(|e| e.token().0).collect()
        };
        for i in ready {
            if state.get(i) != Some(&1) {
                continue;
            }
            match conns[i].read(&mut buf) {
                Ok(1) if buf[0] == b'x' => state[i] = 2,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                _ => state[i] = 3,
            }
            left -= 1;
        }
    }
    Ok(state.iter().filter(|&&s| s == 2).count())
}
