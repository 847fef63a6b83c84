//! Chat (`netlab-chat`) on threads: the shared [`Chat`] core behind one `Mutex`, a reader thread and
//! a writer thread per member.
//!
//! * **Reader** (the connection's thread): blocking reads; each chunk goes to `Chat::receive` under
//!   the lock, and the outputs are drained under the same lock, as the chat's contract requires.
//! * **Writer** (one more thread per member): the only thread that writes to the member's socket.
//!   Deliveries reach it through its [`Outbox`], a queue held to the chat's `output_limit`: a
//!   member whose queue stays over it for [`SOFT_GRACE`], or ever passes [`HARD_FACTOR`] times it,
//!   is disconnected as too slow and its socket shut down (which also frees a writer blocked in
//!   `write`). So a client that stops reading blocks only its own writer, never the lock or the
//!   other members (the alternative, writing to every member
//!   under the lock with a write timeout, lets one stuck client stall the room for the timeout).
//! * **Timers**: one thread runs `Chat::handle_timeout` at the chat's deadline, waking at least once
//!   a second ([`TIMER_TICK`]) to notice deadlines added since it went to sleep.

use std::collections::{HashMap, VecDeque};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use netlab_chat::{Chat, ChatConfig, ChatOutput, LeaveReason, MemberId, TimeOfDay};

use super::{Counters, READ_BUF, THREAD_STACK, accept_loop};
use crate::reactor::bound_tcp_listener;

/// Stack of a writer thread: it only holds a batch vector and calls `write_all`.
const WRITER_STACK: usize = 64 * 1024;
/// The timer thread sleeps at most this long, so a deadline added meanwhile is at most this late.
const TIMER_TICK: Duration = Duration::from_secs(1);
/// A member's queue may pass the chat's output limit while its writer is merely waiting to be
/// scheduled (a reader thread can queue a burst faster than the writer wakes up): it is too slow
/// when the queue stays over the limit this long (the soft limit)...
const SOFT_GRACE: Duration = Duration::from_secs(1);
/// ...or grows past this many times the limit at all (the hard limit).
const HARD_FACTOR: usize = 16;
/// Connections accepted beyond `max_users`, so that the chat itself can answer `! server full`.
const REFUSAL_MARGIN: usize = 64;

/// The chat and the outbox of every member, under one lock.
struct Shared {
    chat: Chat,
    outboxes: HashMap<MemberId, Arc<Outbox>>,
    /// Cap on one member's queued bytes (the chat's `output_limit`).
    cap: usize,
}

/// What the writer thread of one member works from.
struct Outbox {
    state: Mutex<OutState>,
    ready: Condvar,
    /// The member's socket (shared with its reader and writer), shut down to abort a blocked write.
    sock: Arc<TcpStream>,
}

#[derive(Default)]
struct OutState {
    queue: VecDeque<Bytes>,
    /// Bytes queued or being written.
    bytes: usize,
    /// Since when `bytes` has been over the limit (cleared when the writer brings it back under).
    over_since: Option<Instant>,
    /// Write what is queued, then close.
    closing: bool,
    /// Close at once, dropping what is queued (the member was too slow).
    abort: bool,
}

impl Outbox {
    /// Queue `data`; false if the member is too slow: its queue would pass `HARD_FACTOR` × `cap`,
    /// or has been over `cap` for `SOFT_GRACE`.
    fn push(&self, data: Bytes, cap: usize, now: Instant) -> bool {
        let mut st = lock(&self.state);
        let bytes = st.bytes + data.len();
        if bytes > cap.saturating_mul(HARD_FACTOR) || st.over_since.is_some_and(|t| now - t > SOFT_GRACE) {
            return false;
        }
        if bytes > cap && st.over_since.is_none() {
            st.over_since = Some(now);
        }
        st.bytes = bytes;
        st.queue.push_back(data);
        self.ready.notify_one();
        true
    }

    /// Close after the queued bytes (`abort` false) or at once. An abort also shuts the socket down:
    /// the writer may be blocked in `write` to a client that does not read, and the reader must stop.
    fn close(&self, abort: bool) {
        let mut st = lock(&self.state);
        st.closing = true;
        st.abort |= abort;
        self.ready.notify_one();
        if abort {
            let _ = self.sock.shutdown(Shutdown::Both);
        }
    }
}

/// Lock, ignoring poisoning: a panicked thread leaves the chat as consistent as any early return.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Bind the chat listener, log where, and start the accept and timer threads.
pub fn start(addr: SocketAddr, config: ChatConfig, clock: Box<dyn TimeOfDay>) -> Result<Arc<Counters>> {
    let counters = Arc::new(Counters::default());
    let listener = bound_tcp_listener(addr).with_context(|| format!("chat/tcp: cannot listen on {addr}"))?;
    log::info!("listening chat/tcp {}", listener.local_addr()?);
    let max_conns = config.max_users.saturating_add(REFUSAL_MARGIN);
    let cap = config.output_limit;
    let shared =
        Arc::new(Mutex::new(Shared { chat: Chat::new(config, clock), outboxes: HashMap::new(), cap }));
    let s = shared.clone();
    thread::Builder::new().name("chat-timer".into()).spawn(move || timer_loop(&s))?;
    let c = counters.clone();
    thread::Builder::new().name("chat-accept".into()).stack_size(THREAD_STACK).spawn(move || {
        accept_loop("chat", listener, max_conns, c, move |stream, counters| {
            serve_conn(stream, counters, &shared)
        })
    })?;
    Ok(counters)
}

/// Act on every pending output, under the lock. Members over their output cap are disconnected as
/// too slow, which may queue more outputs (their leave notices): loop until none are left.
fn drain(sh: &mut Shared, now: Instant) {
    loop {
        let mut slow = Vec::new();
        while let Some(out) = sh.chat.poll_output() {
            match out {
                ChatOutput::Deliver { member, data } => {
                    if let Some(ob) = sh.outboxes.get(&member) {
                        if !ob.push(data, sh.cap, now) {
                            slow.push(member);
                        }
                    }
                }
                ChatOutput::Close { member } => {
                    if let Some(ob) = sh.outboxes.remove(&member) {
                        ob.close(false);
                    }
                }
            }
        }
        if slow.is_empty() {
            return;
        }
        for member in slow {
            if let Some(ob) = sh.outboxes.remove(&member) {
                ob.close(true);
            }
            sh.chat.disconnect(now, member, LeaveReason::TooSlow);
        }
    }
}

/// One member's connection thread: start its writer, then read until EOF or error.
fn serve_conn(stream: TcpStream, counters: &Counters, shared: &Mutex<Shared>) {
    let Ok(peer) = stream.peer_addr() else { return };
    // Bound every write as the reactor bounds a flush on close: a peer that reads nothing for this
    // long is cut off, so a blocked writer (and the reader it would leave behind) cannot live
    // forever. It must be set before any write starts: Linux reads it when `write` begins.
    if stream.set_write_timeout(Some(crate::reactor::LINGER)).is_err() {
        return;
    }
    // One descriptor, shared: `&TcpStream` reads and writes, so no `try_clone` (no second fd).
    let stream = Arc::new(stream);
    let outbox = Arc::new(Outbox { state: Mutex::default(), ready: Condvar::new(), sock: stream.clone() });
    let (id, cap) = {
        let mut sh = lock(shared);
        let now = Instant::now();
        let id = sh.chat.connect(now, peer);
        sh.outboxes.insert(id, outbox.clone());
        drain(&mut sh, now);
        (id, sh.cap)
    };
    let (ob, write_half) = (outbox.clone(), stream.clone());
    let writer = thread::Builder::new()
        .name("chat-writer".into())
        .stack_size(WRITER_STACK)
        .spawn(move || write_loop(&write_half, &ob, cap));
    let writer = match writer {
        Ok(w) => w,
        Err(e) => {
            log::warn!("chat: cannot start a writer thread: {e}");
            counters.refused.fetch_add(1, Relaxed);
            leave(shared, id, &outbox, true);
            return;
        }
    };
    let (bytes_in, error) = read_loop(&stream, id, shared);
    if error {
        counters.errors.fetch_add(1, Relaxed);
    }
    leave(shared, id, &outbox, false);
    let bytes_out = writer.join().unwrap_or(0);
    counters.bytes_in.fetch_add(bytes_in, Relaxed);
    counters.bytes_out.fetch_add(bytes_out, Relaxed);
}

/// Read until EOF, an error, or the writer shutting the socket; every chunk into the chat.
/// Returns the bytes read and whether it ended in an error.
fn read_loop(mut stream: &TcpStream, id: MemberId, shared: &Mutex<Shared>) -> (u64, bool) {
    let mut buf = [0u8; READ_BUF];
    let mut total = 0u64;
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) => return (total, false),
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => {
                log::debug!("chat: read error: {e}");
                return (total, true);
            }
        };
        total += n as u64;
        let mut sh = lock(shared);
        let now = Instant::now();
        sh.chat.receive(now, id, &buf[..n]);
        drain(&mut sh, now);
    }
}

/// The member's connection ended (or its writer could not start): tell the chat (harmless if it
/// already closed the member) and let the writer finish.
fn leave(shared: &Mutex<Shared>, id: MemberId, outbox: &Outbox, abort: bool) {
    let mut sh = lock(shared);
    let now = Instant::now();
    sh.chat.disconnect(now, id, LeaveReason::Closed);
    drain(&mut sh, now);
    sh.outboxes.remove(&id);
    drop(sh);
    outbox.close(abort);
}

/// The writer thread: write whatever is queued, in order, as one batch per wake-up; at close, shut
/// the socket down so the reader thread wakes up too. Returns the bytes written.
fn write_loop(mut stream: &TcpStream, outbox: &Outbox, cap: usize) -> u64 {
    let mut batch: Vec<u8> = Vec::new();
    let mut total = 0u64;
    loop {
        {
            let mut st = lock(&outbox.state);
            while st.queue.is_empty() && !st.closing {
                st = outbox.ready.wait(st).unwrap_or_else(|e| e.into_inner());
            }
            if st.abort || (st.closing && st.queue.is_empty()) {
                break;
            }
            batch.clear();
            for data in st.queue.drain(..) {
                batch.extend_from_slice(&data);
            }
        }
        if let Err(e) = stream.write_all(&batch) {
            log::debug!("chat: write error: {e}");
            break;
        }
        total += batch.len() as u64;
        let mut st = lock(&outbox.state);
        st.bytes -= batch.len();
        if st.bytes <= cap {
            st.over_since = None;
        }
    }
    let _ = stream.shutdown(Shutdown::Both);
    total
}

/// Run the chat's timers (idle timeouts) at their deadlines.
fn timer_loop(shared: &Mutex<Shared>) {
    loop {
        let deadline = lock(shared).chat.poll_timeout();
        let now = Instant::now();
        match deadline {
            Some(d) if d <= now => {
                let mut sh = lock(shared);
                sh.chat.handle_timeout(now);
                drain(&mut sh, now);
            }
            Some(d) => thread::sleep((d - now).min(TIMER_TICK)),
            None => thread::sleep(TIMER_TICK),
        }
    }
}
