//! The thread-per-connection baseline: blocking std sockets, one OS thread per TCP connection.
//!
//! This is the classic design `netlab bench` compares the reactor against, written as well as that
//! design allows: no sleeps, no polling, one read buffer per connection on the thread's own stack,
//! `TCP_NODELAY` like the reactor, and the same protocol crates (`netlab-echo`, `netlab-chat`), so
//! the comparison measures the I/O model and not two implementations of a protocol.
//!
//! * **Threads.** Each TCP listener has an accept thread; each accepted connection gets its own
//!   thread with a [`THREAD_STACK`] stack; each UDP socket has one thread. The main thread only waits
//!   for signals.
//! * **Signals.** SIGUSR1 logs the counters; SIGINT/SIGTERM log them and exit 0 at once (blocked
//!   threads are not woken one by one: the kernel closes their sockets).
//! * **Limits.** A listener accepts at most its `--<proto>-max-conns` connections at once; a
//!   connection whose thread cannot be created (out of memory or thread ids) is closed and counted.

mod chat;
mod echo;

use std::net::{TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::thread;

use anyhow::{Context, Result};
use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1};
use signal_hook::iterator::Signals;

use crate::handlers::ServeArgs;

/// Stack of every connection thread. A connection thread needs its read buffer ([`READ_BUF`]) plus
/// a few frames of std and the protocol crate; 128 KiB leaves ample headroom while 10,000 threads
/// reserve 1.25 GiB of address space (only touched pages cost memory).
pub const THREAD_STACK: usize = 128 * 1024;
/// Read buffer of one connection, on its thread's stack: a 16 KiB read serves large echo messages
/// in few system calls without making every thread's resident stack large.
pub const READ_BUF: usize = 16 * 1024;

/// Counters of one protocol, shared by its threads. Byte counts of a connection are added when it
/// ends (one atomic add per connection, not per read), so SIGUSR1 shows finished connections only.
#[derive(Default)]
pub struct Counters {
    /// Connections open now.
    pub conns_now: AtomicU64,
    /// Connections accepted since start.
    pub conns_total: AtomicU64,
    /// Connections closed at once: over the limit, or no thread could be created.
    pub refused: AtomicU64,
    /// Bytes read (connections: when they end) and datagram bytes received.
    pub bytes_in: AtomicU64,
    /// Bytes written (connections: when they end) and datagram bytes sent.
    pub bytes_out: AtomicU64,
    /// Datagrams received.
    pub dgrams_in: AtomicU64,
    /// Datagrams sent.
    pub dgrams_out: AtomicU64,
    /// Datagrams dropped (privileged source port, or a failed send).
    pub dgrams_dropped: AtomicU64,
    /// I/O errors.
    pub errors: AtomicU64,
}

impl Counters {
    fn line(&self) -> String {
        let g = |a: &AtomicU64| a.load(Relaxed);
        format!(
            "conns_now={} conns_total={} refused={} bytes_in={} bytes_out={} dgrams_in={} dgrams_out={} \
             dgrams_dropped={} errors={}",
            g(&self.conns_now),
            g(&self.conns_total),
            g(&self.refused),
            g(&self.bytes_in),
            g(&self.bytes_out),
            g(&self.dgrams_in),
            g(&self.dgrams_out),
            g(&self.dgrams_dropped),
            g(&self.errors)
        )
    }
}

/// `netlab serve --model threaded`: echo (TCP+UDP) and chat (TCP). Blocks until SIGINT/SIGTERM.
pub fn serve(args: &ServeArgs) -> Result<ExitCode> {
    crate::reactor::raise_fd_limit();
    if args.tftp.tftp.0.is_some() || args.celsius.celsius.0.is_some() {
        log::warn!("the threaded model serves echo and chat only; tftp and celsius are ignored");
    }
    // Installed before any listener exists, so no signal is missed once tests see the log lines.
    let mut signals = Signals::new([SIGINT, SIGTERM, SIGUSR1]).context("installing signal handlers")?;
    let mut services: Vec<(&'static str, Arc<Counters>)> = Vec::new();
    if let Some(addr) = args.echo.echo.0 {
        services.push(("echo", echo::start(addr, args.echo.echo_max_conns)?));
    }
    if let Some(addr) = args.chat.chat.0 {
        let config = crate::handlers::chat::config(&args.chat)?;
        let clock = Box::new(crate::handlers::chat::LocalClock::new());
        services.push(("chat", chat::start(addr, config, clock)?));
    }
    if services.is_empty() {
        anyhow::bail!("the threaded model serves echo and chat: both are off");
    }
    // Scripts and tests wait for this line, as for the reactor's: every listener is open.
    let listeners: usize = services.iter().map(|(name, _)| if *name == "echo" { 2 } else { 1 }).sum();
    log::info!("ready: {listeners} listeners, a thread per connection");
    for signal in signals.forever() {
        let when = if signal == SIGUSR1 { "on SIGUSR1" } else { "at shutdown" };
        for (name, counters) in &services {
            log::info!("stats {name} ({when}): {}", counters.line());
        }
        log::info!("stats threaded ({when}): threads={}", thread_count());
        if signal != SIGUSR1 {
            break;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Threads of this process, from /proc (0 if unreadable).
fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task").map(|d| d.count()).unwrap_or(0)
}

/// Accept forever on `listener`, running `serve_conn` on a new thread per connection, at most
/// `max_conns` at once. Runs on the listener's own thread.
fn accept_loop<F>(
    name: &'static str,
    listener: TcpListener,
    max_conns: usize,
    counters: Arc<Counters>,
    serve_conn: F,
) where
    F: Fn(TcpStream, &Counters) + Send + Sync + Clone + 'static,
{
    loop {
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) => {
                // EMFILE and friends: the connection stays in the backlog; try again shortly.
                counters.errors.fetch_add(1, Relaxed);
                log::warn!("{name}: accept failed: {e}");
                thread::sleep(std::time::Duration::from_millis(10));
                continue;
            }
        };
        counters.conns_total.fetch_add(1, Relaxed);
        if counters.conns_now.load(Relaxed) >= max_conns as u64 {
            counters.refused.fetch_add(1, Relaxed);
            log::debug!("{name}: connection limit ({max_conns}) reached, closing a new connection");
            continue;
        }
        let _ = stream.set_nodelay(true);
        counters.conns_now.fetch_add(1, Relaxed);
        let (c, serve) = (counters.clone(), serve_conn.clone());
        let spawned =
            thread::Builder::new().name(format!("{name}-conn")).stack_size(THREAD_STACK).spawn(move || {
                serve(stream, &c);
                c.conns_now.fetch_sub(1, Relaxed);
            });
        if let Err(e) = spawned {
            counters.conns_now.fetch_sub(1, Relaxed);
            counters.refused.fetch_add(1, Relaxed);
            log::warn!("{name}: cannot start a connection thread: {e}");
        }
    }
}
