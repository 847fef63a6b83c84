//! The reactor: one thread, one `mio::Poll`, every socket in one slab.
//!
//! A turn of the loop reads like its table of contents:
//!
//! ```text
//! poll → record readiness → serve ready sockets → fire timers → flush writes → reap
//! ```
//!
//! * **Slab.** Every socket (listener, connection, UDP, ICMP) is an [`Entry`] in one `Slab`; its key
//!   is its `mio::Token` and, with a generation, the [`SockId`] its service knows it by.
//! * **Readiness is remembered.** Events are edge-triggered: an event sets `readable`/`writable`, and
//!   only `WouldBlock` clears them. A socket that used up its turn's budget (64 KiB, 64 datagrams, 64
//!   accepts) stays on the ready list and the next poll does not sleep.
//! * **Inputs in, outputs out, then drain.** Each input is handed to the owning [`Service`], whose
//!   outputs are applied at once: writes are queued, datagrams sent, sockets opened. Answers to
//!   outputs (`Opened`, `SendFailed`, `Closed`) are delivered before the turn ends.
//! * **Write before sleeping.** Queued output is written at the end of the turn; WRITABLE interest is
//!   registered only after a write returned `WouldBlock`.
//! * **Never free during dispatch.** Closing marks an entry *doomed*; the reap at the end of the turn
//!   removes it and tells its service, exactly once.
//! * **Only the poll itself is fatal.** An error on one socket closes that socket; the loop goes on.

mod icmp;
mod io;
mod outbuf;
mod outputs;
mod socket;
mod stats;

use std::collections::VecDeque;
use std::mem;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use mio::{Events, Interest, Poll, Token};
use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1};
use signal_hook_mio::v1_0::Signals;
use slab::Slab;

use netlab_core::{CloseReason, Input, OpenError, Opened, Service, SockId, Timers};

use socket::{Entry, Sock};
pub use socket::{bound_tcp_listener, bound_udp};
use stats::Counters;

/// Token of the signal pipe; slab keys never get this high.
const SIGNAL_TOKEN: Token = Token(usize::MAX - 1);
/// Events taken from one `epoll_wait`.
const EVENTS_CAPACITY: usize = 1024;
/// Size of the one read buffer shared by every socket: the largest UDP datagram fits.
const READ_BUF: usize = 64 * 1024;
/// Flush-on-close is bounded: a peer that reads nothing for this long is cut off.
pub const LINGER: Duration = Duration::from_secs(5);
/// Flush/reap rounds in one turn; reaping can queue output (leave notices) that must be written.
const MAX_FLUSH_ROUNDS: usize = 8;

/// Reactor settings.
pub struct ReactorConfig {
    /// On SIGINT/SIGTERM, how long to keep flushing pending output before exiting anyway.
    pub shutdown_timeout: Duration,
}

/// A service and the reactor's counters for it.
struct ServiceSlot {
    svc: Box<dyn Service>,
    stats: Counters,
}

/// An answer to an output, delivered as an input before the turn ends.
enum Deferred {
    Opened { tag: u64, result: Result<Opened, OpenError> },
    SendFailed { sock: SockId, to: std::net::SocketAddr, error: OpenError },
    Closed { sock: SockId, reason: CloseReason },
}

/// The event loop. See the module docs.
pub struct Reactor {
    poll: Poll,
    events: Events,
    /// Every socket; key = token = `SockId::index`.
    slab: Slab<Entry>,
    /// Generation of each slab slot, bumped when the slot is freed.
    generations: Vec<u32>,
    services: Vec<ServiceSlot>,
    /// Sockets with remembered readiness to serve (this turn, or the next one if added while serving).
    ready: Batch<SockId>,
    /// Connections with output queued this turn.
    dirty: Batch<SockId>,
    /// Entries to reap at the end of the turn.
    doomed: Batch<usize>,
    /// Answers to outputs, waiting to be delivered.
    deferred: VecDeque<(usize, Deferred)>,
    /// Deadlines of connections flushing before close.
    linger: Timers<SockId>,
    /// Accepting is paused (out of file descriptors) until then.
    accept_retry: Option<Instant>,
    signals: Signals,
    /// Set once shutdown began: exit when every socket is gone or at this deadline.
    shutdown_deadline: Option<Instant>,
    /// Start-up failed (a `Listen` could not bind).
    startup_error: Option<anyhow::Error>,
    /// True while the services' start-up outputs are applied.
    starting: bool,
    /// The shared read buffer.
    scratch: Vec<u8>,
    /// This turn's clock reading (one per turn, shared by everyone).
    now: Instant,
    /// Turns so far.
    turns: u64,
    config: ReactorConfig,
}

impl Reactor {
    /// A reactor with no services yet. Installs the SIGINT/SIGTERM/SIGUSR1 handlers.
    pub fn new(config: ReactorConfig) -> Result<Self> {
        let poll = Poll::new().context("creating the poll")?;
        let mut signals = Signals::new([SIGINT, SIGTERM, SIGUSR1]).context("installing signal handlers")?;
        poll.registry().register(&mut signals, SIGNAL_TOKEN, Interest::READABLE)?;
        Ok(Reactor {
            poll,
            events: Events::with_capacity(EVENTS_CAPACITY),
            slab: Slab::new(),
            generations: Vec::new(),
            services: Vec::new(),
            ready: Batch::default(),
            dirty: Batch::default(),
            doomed: Batch::default(),
            deferred: VecDeque::new(),
            linger: Timers::new(),
            accept_retry: None,
            signals,
            shutdown_deadline: None,
            startup_error: None,
            starting: true,
            scratch: vec![0; READ_BUF],
            now: Instant::now(),
            turns: 0,
            config,
        })
    }

    /// Add a service. Its start-up outputs (usually `Listen`) are applied when `run` starts.
    pub fn add(&mut self, svc: Box<dyn Service>) {
        self.services.push(ServiceSlot { svc, stats: Counters::default() });
    }

    /// Run until a signal asks to stop and everything is flushed, or every service is done.
    /// Fails only if a listener cannot be opened at start-up, or if the poll itself fails.
    pub fn run(&mut self) -> Result<()> {
        self.now = Instant::now();
        for s in 0..self.services.len() {
            self.drain(s);
        }
        self.deliver_deferred();
        if let Some(e) = self.startup_error.take() {
            return Err(e);
        }
        self.starting = false;
        let listeners = self.slab.iter().filter(|(_, e)| e.public).count();
        if listeners > 0 {
            // Scripts and tests wait for this line: every listener is open.
            log::info!("ready: {listeners} listeners on one thread");
        }
        self.flush_and_reap();

        while !self.finished() {
            let timeout = self.poll_timeout();
            if let Err(e) = self.poll.poll(&mut self.events, timeout) {
                if e.kind() != std::io::ErrorKind::Interrupted {
                    return Err(e).context("poll failed");
                }
            }
            self.now = Instant::now();
            self.turns += 1;
            self.record_readiness();
            self.serve_ready();
            self.fire_timers();
            self.flush_and_reap();
        }
        self.log_stats("final");
        Ok(())
    }

    /// The loop ends when shutdown has closed every socket, or when every service is done.
    fn finished(&self) -> bool {
        if self.shutdown_deadline.is_some() {
            return self.slab.is_empty();
        }
        self.services.iter().all(|s| s.svc.is_done())
    }

    /// How long the poll may sleep: zero while work is pending, else until the earliest deadline.
    fn poll_timeout(&self) -> Option<Duration> {
        if !self.ready.is_empty() || !self.dirty.is_empty() || !self.doomed.is_empty() {
            return Some(Duration::ZERO);
        }
        let deadlines = self.services.iter().filter_map(|s| s.svc.poll_timeout());
        deadlines
            .chain(self.linger.next_deadline())
            .chain(self.accept_retry)
            .chain(self.shutdown_deadline)
            .min()
            .map(|at| at.saturating_duration_since(self.now))
    }

    /// Turn this turn's events into remembered readiness and a ready list.
    fn record_readiness(&mut self) {
        let mut signalled = false;
        for ev in self.events.iter() {
            if ev.token() == SIGNAL_TOKEN {
                signalled = true;
                continue;
            }
            let key = ev.token().0;
            let Some(entry) = self.slab.get_mut(key) else {
                log::trace!("event for vacant token {key}");
                continue;
            };
            if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                entry.readable = true;
            }
            if ev.is_writable() || ev.is_write_closed() || ev.is_error() {
                entry.writable = true;
            }
            if !entry.queued {
                entry.queued = true;
                self.ready.push(SockId { index: key as u32, generation: self.generations[key] });
            }
        }
        if signalled {
            self.handle_signals();
        }
    }

    fn handle_signals(&mut self) {
        let pending: Vec<i32> = self.signals.pending().collect();
        for sig in pending {
            match sig {
                SIGUSR1 => self.log_stats("on SIGUSR1"),
                _ if self.shutdown_deadline.is_none() => self.begin_shutdown(),
                _ => {
                    log::warn!("second signal: closing everything now");
                    self.shutdown_deadline = Some(self.now);
                }
            }
        }
    }

    /// Close the listeners, let services say goodbye, then flush every connection (bounded).
    fn begin_shutdown(&mut self) {
        log::info!("shutting down: flushing output for at most {:?}", self.config.shutdown_timeout);
        self.shutdown_deadline = Some(self.now + self.config.shutdown_timeout);
        for s in 0..self.services.len() {
            self.services[s].svc.handle_shutdown(self.now);
            self.drain(s);
        }
        self.deliver_deferred();
        let keys: Vec<usize> = self.slab.iter().map(|(k, _)| k).collect();
        for key in keys {
            self.close_key(key, true, CloseReason::Shutdown);
        }
    }

    /// Run due timers: the services' deadlines, flush-on-close limits, accept back-off, shutdown.
    fn fire_timers(&mut self) {
        let now = self.now;
        for s in 0..self.services.len() {
            if self.services[s].svc.poll_timeout().is_some_and(|at| at <= now) {
                self.services[s].svc.handle_timeout(now);
                self.drain(s);
                self.deliver_deferred();
            }
        }
        while let Some((_, sock)) = self.linger.pop_expired(now) {
            if let Some(key) = self.live_key(sock) {
                self.doom(key, CloseReason::FlushTimeout);
            }
        }
        if self.accept_retry.is_some_and(|at| at <= now) {
            self.accept_retry = None;
            self.requeue_listeners();
        }
        if self.shutdown_deadline.is_some_and(|at| at <= now) {
            let keys: Vec<usize> = self.slab.iter().map(|(k, _)| k).collect();
            for key in keys {
                self.doom(key, CloseReason::FlushTimeout);
            }
        }
    }

    /// Write queued output, then reap doomed entries; reaping may queue more output (a chat leave
    /// notice), so repeat a bounded number of times. Leftovers keep the next poll from sleeping.
    fn flush_and_reap(&mut self) {
        for _ in 0..MAX_FLUSH_ROUNDS {
            self.flush();
            if self.doomed.is_empty() {
                break;
            }
            self.reap();
        }
    }

    /// Remove doomed entries and tell their services.
    fn reap(&mut self) {
        let mut doomed = self.doomed.take();
        for key in doomed.drain(..) {
            // Closing the fd (dropping the entry) also removes it from the epoll set.
            let entry = self.slab.remove(key);
            let reason = entry.doomed.unwrap_or(CloseReason::Requested);
            let sock = SockId { index: key as u32, generation: self.generations[key] };
            self.generations[key] = self.generations[key].wrapping_add(1);
            if let Sock::Conn(conn) = &entry.sock {
                self.services[entry.service].stats.conns_now -= 1;
                if let Some(Entry { sock: Sock::Listener(l), .. }) =
                    self.live_key(conn.listener).and_then(|k| self.slab.get_mut(k))
                {
                    l.conns -= 1;
                }
                log::debug!("closed {sock}: {reason}");
            }
            self.deferred.push_back((entry.service, Deferred::Closed { sock, reason }));
        }
        self.doomed.recycle(doomed);
        self.deliver_deferred();
    }

    /// Hand one input to a service, apply its outputs, and deliver any answers they produced.
    fn deliver(&mut self, s: usize, input: Input<'_>) {
        self.services[s].svc.handle_input(self.now, input);
        self.drain(s);
        self.deliver_deferred();
    }

    /// Apply every pending output of service `s`.
    fn drain(&mut self, s: usize) {
        while let Some(out) = self.services[s].svc.poll_output() {
            self.apply(s, out);
        }
    }

    fn deliver_deferred(&mut self) {
        while let Some((s, d)) = self.deferred.pop_front() {
            let input = match d {
                Deferred::Opened { tag, result } => Input::Opened { tag, result },
                Deferred::SendFailed { sock, to, error } => Input::SendFailed { sock, to, error },
                Deferred::Closed { sock, reason } => Input::Closed { sock, reason },
            };
            self.services[s].svc.handle_input(self.now, input);
            self.drain(s);
        }
    }

    /// The slab key of a live, not yet doomed socket.
    fn live_key(&self, sock: SockId) -> Option<usize> {
        let key = sock.index as usize;
        let entry = self.slab.get(key)?;
        (self.generations[key] == sock.generation && entry.doomed.is_none()).then_some(key)
    }

    /// Mark an entry for the reap at the end of the turn.
    fn doom(&mut self, key: usize, reason: CloseReason) {
        if let Some(entry) = self.slab.get_mut(key) {
            if entry.doomed.is_none() {
                entry.doomed = Some(reason);
                self.doomed.push(key);
            }
        }
    }

    fn log_stats(&self, when: &str) {
        for slot in &self.services {
            let extra: String =
                slot.svc.counters().iter().map(|(k, v)| format!(" {k}={v}")).collect::<Vec<_>>().concat();
            log::info!("stats {} ({when}): {}{extra}", slot.svc.name(), slot.stats);
        }
        log::info!("stats reactor ({when}): live_sockets={} turns={}", self.slab.len(), self.turns);
    }
}

/// A work list processed in batches that keeps its memory: `take` hands out the current batch (items
/// pushed meanwhile form the next one) and `recycle` returns the drained vector for reuse, so a busy
/// loop allocates nothing per turn.
struct Batch<T> {
    next: Vec<T>,
    spare: Vec<T>,
}

impl<T> Default for Batch<T> {
    fn default() -> Self {
        Batch { next: Vec::new(), spare: Vec::new() }
    }
}

impl<T> Batch<T> {
    fn push(&mut self, item: T) {
        self.next.push(item);
    }

    fn is_empty(&self) -> bool {
        self.next.is_empty()
    }

    fn take(&mut self) -> Vec<T> {
        mem::replace(&mut self.next, mem::take(&mut self.spare))
    }

    fn recycle(&mut self, mut used: Vec<T>) {
        used.clear();
        if used.capacity() > self.spare.capacity() {
            self.spare = used;
        }
    }
}

/// Raise the soft open-file limit to the hard one, so that thousands of connections fit.
pub fn raise_fd_limit() {
    // SAFETY: getrlimit/setrlimit with a valid rlimit struct.
    unsafe {
        let mut lim: libc::rlimit = mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                log::warn!("could not raise the open-file limit: {}", std::io::Error::last_os_error());
            }
        }
    }
}
