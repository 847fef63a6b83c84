//! The `Pinger`: one ping run to many targets, as a state machine on virtual time.
//!
//! Probes to each target are numbered 1, 2, 3... with a 64-bit counter; the 16-bit wire sequence
//! number is its low half. A reply is ours when it comes from the target, its sequence number names a
//! probe still in the target's window, and its payload starts with our cookie and that probe's full
//! number. The window holds at most [`MAX_WINDOW`] probes (far fewer than 65536), so the low 16 bits
//! always name one probe: there is no cliff when the wire sequence wraps.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use netlab_core::{RecvMeta, TimerId, Timers};

use crate::payload::{ID_LEN, carries_id, check_payload, probe_payload};
use crate::stats::Stats;
pub use crate::types::{Claim, Damage, Event, PingConfig, Transmit};
use crate::wire::{Echo, EchoPacket, IcmpError};

/// Probes remembered per target (pending ones, and answered ones for duplicate detection). A probe
/// pushed out of the window while still pending counts as lost. 4096 × 1 ms interval = 4 s.
pub const MAX_WINDOW: usize = 4096;
/// Durations in a [`PingConfig`] are clamped to this (about 31 years), so that no deadline
/// arithmetic can overflow an `Instant`, whatever a caller passes.
pub const MAX_DURATION: Duration = Duration::from_secs(1_000_000_000);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Probe {
    /// Sent at this instant, no answer yet.
    Pending(Instant),
    /// Answered; sent at this instant (a duplicate's RTT is measured from it).
    Answered(Instant),
    /// Timed out, or an error came back.
    Failed,
}

/// One target's state.
#[derive(Debug)]
pub struct Target {
    /// The address pinged.
    pub addr: IpAddr,
    /// Its counters.
    pub stats: Stats,
    /// Number of the next probe (the first is 1).
    next: u64,
    /// Probes `base..next`, oldest first.
    window: VecDeque<Probe>,
    /// Pending probes in the window.
    pending: usize,
    /// When the next probe is due (`None`: no more to send).
    send_timer: Option<TimerId>,
    /// Nothing more to do for this target (see `Pinger::target_complete`).
    complete: bool,
}

impl Target {
    fn base(&self) -> u64 {
        self.next - self.window.len() as u64
    }
    /// The probe number in the window whose low 16 bits are `seq`.
    fn probe_for_seq(&self, seq: u16) -> Option<u64> {
        let base = self.base();
        let p = base + u64::from(seq.wrapping_sub(base as u16));
        (p < self.next).then_some(p)
    }
}

/// One run to many targets. See the module docs.
pub struct Pinger {
    /// Settings (durations clamped to [`MAX_DURATION`]).
    config: PingConfig,
    /// The targets, in the order given, repeats removed.
    targets: Vec<Target>,
    /// Target index by address (replies are matched by their source).
    by_addr: HashMap<IpAddr, usize>,
    /// Next send of each target, with the instant it was scheduled for.
    sends: Timers<(usize, Instant)>,
    /// Probes in send order with their timeout: all share one timeout, so this is sorted.
    timeouts: VecDeque<(Instant, usize, u64)>,
    /// Echo requests waiting to be sent.
    transmits: VecDeque<Transmit>,
    /// Events waiting for the front-end.
    events: VecDeque<Event>,
    /// When [`Pinger::start`] ran.
    started: Option<Instant>,
    /// When the run ended.
    finished: Option<Instant>,
    /// Per family (v4, v6): whether replies must carry our identifier (raw sockets keep it;
    /// datagram sockets rewrite it).
    check_ident: [bool; 2],
    /// Targets not yet complete; the run is over when none are left.
    incomplete: usize,
    /// Targets whose state changed since completion was last checked (so that checking is O(1)
    /// per change rather than a scan of every target).
    touched: Vec<usize>,
}

impl Pinger {
    /// A run to `addrs` (a repeated address is pinged once: replies could not tell them apart).
    pub fn new(mut config: PingConfig, addrs: &[IpAddr]) -> Self {
        for d in [&mut config.interval, &mut config.spacing, &mut config.timeout] {
            *d = (*d).min(MAX_DURATION);
        }
        config.deadline = config.deadline.map(|d| d.min(MAX_DURATION));
        // A probe leaves its target's window after MAX_WINDOW later sends, each at least `interval`
        // apart: a longer timeout could never fire on a pending probe, and would only let the
        // timeout queue grow with -W/-i instead of with the window.
        let window_span = config.interval.max(Duration::from_millis(1)) * MAX_WINDOW as u32;
        config.timeout = config.timeout.min(window_span);
        let mut by_addr = HashMap::new();
        let mut targets = Vec::new();
        for &addr in addrs {
            by_addr.entry(addr).or_insert_with(|| {
                targets.push(Target {
                    addr,
                    stats: Stats::default(),
                    next: 1,
                    window: VecDeque::new(),
                    pending: 0,
                    send_timer: None,
                    complete: false,
                });
                targets.len() - 1
            });
        }
        Pinger {
            config,
            by_addr,
            sends: Timers::new(),
            timeouts: VecDeque::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            started: None,
            finished: None,
            check_ident: [false; 2],
            incomplete: targets.len(),
            touched: (0..targets.len()).collect(),
            targets,
        }
    }

    /// Require our identifier in replies and quoted probes (raw sockets keep it; a datagram ping
    /// socket rewrites it, so leave this off there).
    pub fn set_check_ident(&mut self, v6: bool, on: bool) {
        self.check_ident[usize::from(v6)] = on;
    }

    /// Begin: the first probe of target `i` goes out at `now + i × spacing`.
    pub fn start(&mut self, now: Instant) {
        if self.started.is_some() {
            return;
        }
        self.started = Some(now);
        let sends = self.config.count != Some(0);
        for i in 0..self.targets.len() {
            if sends {
                // At most MAX_DURATION × 2³², well inside an Instant's range.
                let at = now + self.config.spacing * u32::try_from(i).unwrap_or(u32::MAX);
                self.targets[i].send_timer = Some(self.sends.insert(at, (i, at)));
            }
        }
        self.handle_timeout(now);
    }

    /// The targets, in the order given (repeats removed).
    pub fn targets(&self) -> &[Target] {
        &self.targets
    }
    /// The index of the target with this address.
    pub fn target_index(&self, addr: IpAddr) -> Option<usize> {
        self.by_addr.get(&addr).copied()
    }
    /// When the run started and (once done) ended.
    pub fn span(&self) -> (Option<Instant>, Option<Instant>) {
        (self.started, self.finished)
    }
    /// True once the run is over: every target done, the deadline passed, or [`Pinger::stop`].
    pub fn is_done(&self) -> bool {
        self.finished.is_some()
    }
    /// The next echo request to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }
    /// The next thing to report.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The earliest instant at which [`Pinger::handle_timeout`] has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.finished.is_some() {
            return None;
        }
        let deadline = self.started.zip(self.config.deadline).map(|(s, d)| s + d);
        let timeout = self.timeouts.front().map(|t| t.0);
        [self.sends.next_deadline(), timeout, deadline].into_iter().flatten().min()
    }

    /// End the run now (SIGINT): nothing more is sent, pending probes are left unanswered.
    pub fn stop(&mut self, now: Instant) {
        if self.finished.is_none() {
            self.finished = Some(now);
            self.sends = Timers::new();
            self.timeouts.clear();
        }
    }

    /// Do what is due at `now`: the deadline, lost probes, then sends. Early calls are harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some(started) = self.started else { return };
        if self.finished.is_some() {
            return;
        }
        if self.config.deadline.is_some_and(|d| now >= started + d) {
            return self.stop(now);
        }
        while let Some(&(at, t, p)) = self.timeouts.front() {
            if at > now {
                break;
            }
            self.timeouts.pop_front();
            if self.settle(t, p, Probe::Failed).is_some() {
                self.events.push_back(Event::Timeout { target: t, seq: p as u16 });
            }
        }
        while let Some((_, (t, at))) = self.sends.pop_expired(now) {
            self.targets[t].send_timer = None;
            self.touched.push(t);
            self.send_probe(now, t);
            if self.wants_more(t) {
                // Keep the schedule, but never try to catch up a backlog in a burst.
                let next = (at + self.config.interval).max(now);
                self.targets[t].send_timer = Some(self.sends.insert(next, (t, next)));
            }
        }
        self.check_finished(now);
    }

    /// Whether target `t` is still to be sent probes.
    fn wants_more(&self, t: usize) -> bool {
        let target = &self.targets[t];
        match (self.config.count, self.config.deadline) {
            (None, _) => true,
            // With a deadline, iputils keeps probing until `count` replies came back.
            (Some(c), Some(_)) => target.stats.received < c,
            (Some(c), None) => target.stats.sent < c,
        }
    }

    fn target_complete(&self, t: usize) -> bool {
        let target = &self.targets[t];
        match (self.config.count, self.config.deadline) {
            (None, _) => false,
            (Some(c), Some(_)) => target.stats.received >= c,
            (Some(_), None) => target.send_timer.is_none() && target.pending == 0,
        }
    }

    fn check_finished(&mut self, now: Instant) {
        while let Some(t) = self.touched.pop() {
            if !self.targets[t].complete && self.target_complete(t) {
                self.targets[t].complete = true;
                self.incomplete -= 1;
            }
        }
        if self.incomplete == 0 {
            self.stop(now);
        }
    }

    fn send_probe(&mut self, now: Instant, t: usize) {
        let (ident, v6, timeout) = (self.config.ident, self.targets[t].addr.is_ipv6(), self.config.timeout);
        let target = &mut self.targets[t];
        let p = target.next;
        target.next += 1;
        target.window.push_back(Probe::Pending(now));
        target.pending += 1;
        target.stats.sent += 1;
        let payload = probe_payload(self.config.cookie, p, self.config.payload_len);
        let echo = Echo { v6, reply: false, ident, seq: p as u16, payload: &payload };
        let mut data = vec![0; echo.buffer_len()];
        echo.emit(&mut data);
        self.transmits.push_back(Transmit { target: t, to: target.addr, data });
        self.timeouts.push_back((now + timeout, t, p));
        if self.targets[t].window.len() > MAX_WINDOW {
            let base = self.targets[t].base();
            if self.settle(t, base, Probe::Failed).is_some() {
                self.events.push_back(Event::Timeout { target: t, seq: base as u16 });
            }
            self.targets[t].window.pop_front();
        }
    }

    /// Move probe `p` of target `t` out of `Pending`; returns when it was sent, if it was pending.
    fn settle(&mut self, t: usize, p: u64, to: Probe) -> Option<Instant> {
        let target = &mut self.targets[t];
        let idx = p.checked_sub(target.base())? as usize;
        let slot = target.window.get_mut(idx)?;
        let Probe::Pending(sent) = *slot else { return None };
        *slot = to;
        target.pending -= 1;
        self.touched.push(t);
        Some(sent)
    }

    /// A sent datagram to `to` failed: the target's latest probe is an error.
    pub fn send_failed(&mut self, now: Instant, to: IpAddr, error: String) {
        let Some(t) = self.target_index(to) else { return };
        let p = self.targets[t].next - 1;
        if self.settle(t, p, Probe::Failed).is_some() {
            self.targets[t].stats.errors += 1;
            self.events.push_back(Event::SendFailed { target: t, seq: p as u16, error });
            self.check_finished(now);
        }
    }

    /// Feed one received ICMP message (no IP header) from `from`. Replies and errors about our
    /// probes are claimed and reported as events; everything else is `NotOurs`.
    pub fn handle_icmp(&mut self, now: Instant, from: IpAddr, data: &[u8], meta: RecvMeta) -> Claim {
        if self.finished.is_some() {
            return Claim::NotOurs;
        }
        let v6 = from.is_ipv6();
        let claim = if let Ok(echo) = EchoPacket::new_checked(data, v6) {
            if echo.is_reply() { self.handle_reply(now, from, echo, meta) } else { Claim::NotOurs }
        } else if let Ok(err) = IcmpError::parse(data, v6) {
            self.handle_error(from, err)
        } else {
            Claim::NotOurs
        };
        if claim == Claim::Ours {
            self.check_finished(now);
        }
        claim
    }

    fn handle_reply(&mut self, now: Instant, from: IpAddr, echo: EchoPacket<'_>, meta: RecvMeta) -> Claim {
        let Some(t) = self.target_index(from) else { return Claim::NotOurs };
        if self.check_ident[usize::from(from.is_ipv6())] && echo.ident() != self.config.ident {
            return Claim::NotOurs;
        }
        let Some(p) = self.targets[t].probe_for_seq(echo.seq()) else { return Claim::NotOurs };
        let (cookie, len) = (self.config.cookie, self.config.payload_len);
        if !carries_id(echo.payload(), cookie, p, len) {
            return Claim::NotOurs;
        }
        let (seq, bytes) = (echo.seq(), echo.len());
        let damage = if !echo.checksum_ok() {
            Some(Damage::BadChecksum)
        } else {
            check_payload(echo.payload(), cookie, p, len)
        };
        if let Some(damage) = damage {
            self.targets[t].stats.damaged += 1;
            self.events.push_back(Event::Damaged { target: t, seq, bytes, damage });
            return Claim::Ours;
        }
        let base = self.targets[t].base();
        let (sent, dup) = match self.targets[t].window[(p - base) as usize] {
            Probe::Pending(sent) => {
                self.settle(t, p, Probe::Answered(sent));
                self.targets[t].stats.received += 1;
                (sent, false)
            }
            Probe::Answered(sent) => {
                self.targets[t].stats.dups += 1;
                (sent, true)
            }
            // A reply after the probe timed out or failed: too late to count.
            Probe::Failed => {
                log::debug!("late reply from {from} icmp_seq={seq}");
                return Claim::Ours;
            }
        };
        let rtt = meta.rx_time.unwrap_or(now).saturating_duration_since(sent);
        // iputils counts duplicates' round trips in the statistics too.
        self.targets[t].stats.record_rtt(rtt);
        self.events.push_back(Event::Reply { target: t, seq, bytes, ttl: meta.ttl, rtt, dup });
        Claim::Ours
    }

    fn handle_error(&mut self, from: IpAddr, err: IcmpError<'_>) -> Claim {
        let Some(t) = self.target_index(err.quoted_dst) else { return Claim::NotOurs };
        if self.check_ident[usize::from(err.quoted_dst.is_ipv6())] && err.quoted_ident != self.config.ident {
            return Claim::NotOurs;
        }
        let Some(p) = self.targets[t].probe_for_seq(err.quoted_seq) else { return Claim::NotOurs };
        // Routers may quote as little as 8 bytes of ICMP; check whatever of our id survived.
        let expected = probe_payload(self.config.cookie, p, self.config.payload_len.min(ID_LEN));
        let n = err.quoted_payload.len().min(expected.len());
        if err.quoted_payload[..n] != expected[..n] {
            return Claim::NotOurs;
        }
        if self.settle(t, p, Probe::Failed).is_some() {
            self.targets[t].stats.errors += 1;
            self.events.push_back(Event::Error { target: t, seq: p as u16, from, kind: err.kind });
        }
        Claim::Ours
    }
}

#[cfg(test)]
#[path = "pinger_tests.rs"]
mod tests;
