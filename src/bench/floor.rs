//! `floor`: the CPU cost of one `read` and one `write` system call per message on loopback TCP.
//!
//! Any echo server pays at least this per message, whatever its I/O model: one read to take the
//! message in, one write to send it back (which, on loopback, also runs the receiver's TCP input).
//! Two connected sockets ping-pong `size`-byte messages on one thread with blocking calls; the
//! thread's CPU time divided by the number of (read + write) pairs is the floor.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Instant;

use anyhow::Result;

use super::{BenchArgs, BenchResult, proc, progress};

pub fn run(args: &BenchArgs) -> Result<BenchResult> {
    let listener = TcpListener::bind((args.target.ip(), 0))?;
    let mut a = TcpStream::connect(listener.local_addr()?)?;
    let (mut b, _) = listener.accept()?;
    a.set_nodelay(true)?;
    b.set_nodelay(true)?;
    let msg = vec![0x5au8; args.size];
    let mut buf = vec![0u8; args.size];
    let pb = progress(args.duration, "floor");
    let (cpu0, t0) = (proc::thread_cpu_s(), Instant::now());
    let mut pairs = 0u64;
    while t0.elapsed() < args.duration {
        for _ in 0..1000 {
            a.write_all(&msg)?;
            b.read_exact(&mut buf)?;
            b.write_all(&buf)?;
            a.read_exact(&mut buf)?;
        }
        pairs += 2000;
        pb.set_position(t0.elapsed().as_millis() as u64);
    }
    let cpu = proc::thread_cpu_s() - cpu0;
    pb.finish_and_clear();
    let mut r = BenchResult::new(args, "floor");
    r.label = "read+write floor".into();
    r.duration_s = t0.elapsed().as_secs_f64();
    r.msgs = pairs;
    r.msgs_per_s = pairs as f64 / r.duration_s;
    (r.conns, r.connected) = (1, 1);
    r.client_cpu_s = cpu;
    r.server_cpu_s = Some(cpu);
    r.server_ns_per_msg = Some(cpu * 1e9 / pairs as f64);
    Ok(r)
}
